"""TLS, WebSocket and WSS listeners end to end; disabled listeners stay closed."""

from __future__ import annotations

import socket
import ssl

import pytest

from tests.helpers import Client, make_tls_files
from tests.helpers.nodes import wait_until


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def node(module_node_factory, tls_files):
    return module_node_factory(listeners=("tcp", "ssl", "ws", "wss"), tls=tls_files)


def _roundtrip(pub: Client, sub: Client, topic: str) -> None:
    sub.subscribe(topic, qos=1)
    pub.publish(topic, b"across listeners", qos=1)
    assert sub.expect().payload == b"across listeners"


def test_tls_listener(node, tls_files, version, topic):
    with Client(node.ports["ssl"], version=version, ca_cert=tls_files.ca_cert) as tls_client, \
            Client(node.port, version=version) as plain:
        tls_client.connect()
        plain.connect()
        _roundtrip(tls_client, plain, topic)
        _roundtrip(plain, tls_client, topic + "/back")


def test_tls_listener_serves_certificate(node, tls_files):
    ctx = ssl.create_default_context(cafile=tls_files.ca_cert)
    with socket.create_connection(("127.0.0.1", node.ports["ssl"]), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_websocket_listener(node, version, topic):
    with Client(node.ports["ws"], version=version, transport="websockets") as ws_client, \
            Client(node.port, version=version) as plain:
        ws_client.connect()
        plain.connect()
        _roundtrip(ws_client, plain, topic)
        _roundtrip(plain, ws_client, topic + "/back")


def test_websocket_large_message_spans_frames(node, version, topic):
    with Client(node.ports["ws"], version=version, transport="websockets") as ws_client, \
            Client(node.port, version=version) as plain:
        ws_client.connect()
        plain.connect()
        plain.subscribe(topic, qos=1)
        payload = b"w" * 300_000
        ws_client.publish(topic, payload, qos=1)
        assert plain.expect().payload == payload


def test_wss_listener(node, tls_files, version, topic):
    with Client(node.ports["wss"], version=version, transport="websockets",
                ca_cert=tls_files.ca_cert) as wss_client, \
            Client(node.port, version=version) as plain:
        wss_client.connect()
        plain.connect()
        _roundtrip(wss_client, plain, topic)
        _roundtrip(plain, wss_client, topic + "/back")


def test_websocket_wrong_path_refused(node, version):
    client = Client(node.ports["ws"], version=version, transport="websockets", ws_path="/nope")
    with pytest.raises(Exception):
        client.connect(timeout=3)
    client.close()


def test_websocket_subprotocol_echoed(node):
    request = (
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", node.ports["ws"]), timeout=5) as sock:
        sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            assert chunk, "closed before the handshake response"
            response += chunk
    head = response.decode().lower()
    assert head.startswith("http/1.1 101")
    assert "sec-websocket-protocol: mqtt" in head


def test_disabled_listeners_are_closed(module_node_factory):
    only_tcp = module_node_factory(listeners=("tcp",))
    assert only_tcp.accepts("tcp")
    for ltype in ("ssl", "ws", "wss"):
        assert not only_tcp.accepts(ltype), f"{ltype} listener should be disabled"


def test_max_connections(module_node_factory):
    limited = module_node_factory(config="listeners.tcp.default.max_connections = 2\n")
    with Client(limited.port) as first, Client(limited.port) as second:
        first.connect()
        second.connect()
        third = Client(limited.port)
        with pytest.raises(AssertionError):
            third.connect(timeout=2)  # refused: closed at accept, no CONNACK
        third.close()
    # slots are released when connections close
    with Client(limited.port) as again:
        wait_until(lambda: _try_connect(again), timeout=5, what="a free connection slot")


def _try_connect(client: Client) -> bool:
    try:
        client.connect(timeout=1)
        return True
    except AssertionError:
        return False


@pytest.fixture(scope="module")
def mtls(module_node_factory, tls_files):
    return module_node_factory(
        listeners=("tcp", "ssl"), tls=tls_files,
        config="listeners.ssl.default.ssl_options.verify = verify_peer\n"
               "listeners.ssl.default.ssl_options.fail_if_no_peer_cert = true\n",
    )


def test_tls_verify_peer_requires_client_certificate(mtls, tls_files, version):
    with Client(mtls.ports["ssl"], version=version, ca_cert=tls_files.ca_cert,
                client_cert=(tls_files.client_cert, tls_files.client_key)) as good:
        good.connect()
        assert good.connack[0] == 0
    anonymous = Client(mtls.ports["ssl"], version=version, ca_cert=tls_files.ca_cert)
    with pytest.raises(Exception):
        anonymous.connect(timeout=3)
    anonymous.close()


def test_websocket_custom_path(module_node_factory, topic):
    custom = module_node_factory(listeners=("tcp", "ws"), ws_path="/custom/mqtt")
    with Client(custom.ports["ws"], transport="websockets", ws_path="/custom/mqtt") as ws_client:
        ws_client.connect()
        ws_client.subscribe(topic, qos=1)
        ws_client.publish(topic, b"custom path", qos=1)
        assert ws_client.expect().payload == b"custom path"
    refused = Client(custom.ports["ws"], transport="websockets", ws_path="/mqtt")
    with pytest.raises(Exception):
        refused.connect(timeout=3)
    refused.close()
