"""Cookie challenge-response: success, wrong cookie, replay, versions, cluster names."""

from __future__ import annotations

import pytest

from mqttmesh.cluster import KIND_CTL, KIND_NODE, ClientHandshake, ServerHandshake
from mqttmesh.cluster.handshake import REFUSE
from mqttmesh.cluster.wire import FrameDecoder, encode_frame
from mqttmesh.errors import HandshakeError


def run(client: ClientHandshake, server: ServerHandshake) -> None:
    msg = client.initiate()
    while True:
        reply = server.receive(msg)
        msg = client.receive(reply)
        if msg is None:
            return


def pair(c_cookie="secret", s_cookie="secret", **kw):
    client = ClientHandshake(c_cookie, kw.get("kind", KIND_NODE), "a@127.0.0.1",
                             kw.get("c_cluster", "mesh"), "core",
                             versions=kw.get("c_versions", (1,)))
    server = ServerHandshake(s_cookie, "b@127.0.0.2", kw.get("s_cluster", "mesh"),
                             versions=kw.get("s_versions", (1,)))
    return client, server


def test_success_both_sides_know_each_other():
    client, server = pair()
    run(client, server)
    assert client.done and server.done
    assert server.peer is not None and server.peer.name == "a@127.0.0.1"
    assert server.peer.kind == KIND_NODE and server.peer.version == 1
    assert client.peer is not None and client.peer.name == "b@127.0.0.2"


def test_wrong_cookie_refused_with_one_line_reason_and_refusal_message():
    client, server = pair(c_cookie="wrong")
    hello = client.initiate()
    response = client.receive(server.receive(hello))
    with pytest.raises(HandshakeError, match="^wrong cookie$"):
        server.receive(response)
    assert server.refusal == [REFUSE, "wrong cookie"]
    assert not server.done
    with pytest.raises(HandshakeError, match="refused by peer: wrong cookie"):
        client.receive(server.refusal)


def test_impostor_server_without_cookie_is_detected_by_client():
    client, _ = pair()
    impostor = ServerHandshake("guess", "b@127.0.0.2", "mesh")
    hello = client.initiate()
    response = client.receive(impostor.receive(hello))
    # the impostor cannot verify (wrong cookie) and cannot forge a WELCOME either
    with pytest.raises(HandshakeError):
        impostor.receive(response)
    from mqttmesh.cluster.handshake import WELCOME
    with pytest.raises(HandshakeError, match="wrong cookie"):
        client.receive([WELCOME, b"\0" * 32])


def test_cookie_never_on_the_wire():
    cookie = "very-secret-cookie-value"
    client, server = pair(c_cookie=cookie, s_cookie=cookie)
    wire = b""
    msg = client.initiate()
    while msg is not None:
        wire += encode_frame([msg])
        reply = server.receive(msg)
        wire += encode_frame([reply])
        msg = client.receive(reply)
    assert cookie.encode() not in wire


def test_replayed_handshake_fails():
    # Record a good exchange, then replay the client's messages to a new server.
    client, server = pair()
    hello = client.initiate()
    response = client.receive(server.receive(hello))
    server.receive(response)
    assert server.done
    fresh = ServerHandshake("secret", "b@127.0.0.2", "mesh")
    fresh.receive(hello)  # a new server nonce
    with pytest.raises(HandshakeError, match="wrong cookie"):
        fresh.receive(response)


def test_fixed_nonces_would_replay_proves_nonce_matters():
    # With the same server nonce the response verifies: the server nonce is what stops replay.
    n = b"s" * 16
    client = ClientHandshake("secret", KIND_NODE, "a@h.x", "mesh", "core")
    s1 = ServerHandshake("secret", "b@h.x", "mesh", nonce=n)
    hello = client.initiate()
    response = client.receive(s1.receive(hello))
    s2 = ServerHandshake("secret", "b@h.x", "mesh", nonce=n)
    s2.receive(hello)
    s2.receive(response)
    assert s2.done


def test_highest_common_version_is_chosen():
    client, server = pair(c_versions=(1, 2, 3), s_versions=(1, 2))
    run(client, server)
    assert server.peer.version == 2 and client.peer.version == 2


def test_no_common_version_refused():
    client, server = pair(c_versions=(7,), s_versions=(1,))
    with pytest.raises(HandshakeError, match="no common wire version"):
        server.receive(client.initiate())


def test_other_cluster_name_refused_for_nodes_but_not_ctl():
    client, server = pair(c_cluster="other")
    with pytest.raises(HandshakeError, match="cluster name mismatch"):
        server.receive(client.initiate())
    client, server = pair(c_cluster="", kind=KIND_CTL)
    run(client, server)
    assert server.peer.kind == KIND_CTL


@pytest.mark.parametrize("bad", [
    [100], [100, [1], "node", 5, "mesh", "core", b"x" * 16],
    [100, [1], "node", "a@h.x", "mesh", "core", b"short"], [999, 1], [102, b"mac"],
])
def test_malformed_hello_refused(bad):
    _, server = pair()
    with pytest.raises(HandshakeError):
        server.receive(bad)


def test_pre_auth_frame_limit_bounds_memory():
    decoder = FrameDecoder()  # pre-auth limit 4 KiB
    header = (100 * 1024 * 1024).to_bytes(4, "big")
    with pytest.raises(HandshakeError, match="exceeds the limit"):
        decoder.receive_data(header + b"x" * 1000)
    assert decoder.buffered == 0
