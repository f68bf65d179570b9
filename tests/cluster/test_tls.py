"""cluster.proto_dist = inet_tls: mutual TLS on both cluster ports and for ctl (SPEC §2, §4).

Two real nodes with CA-signed certificates form a cluster (ctl over TLS) and forward; then
bad certificates are refused in both directions: the node as server refuses test clients
presenting them (expired, self-signed, wrong CA, wrong name, none), and the node as client
(``ctl cluster join``) refuses test servers presenting them. Refusals are logged with the
peer address. A bad certfile path stops start-up naming the key.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mqttmesh.cluster import KIND_NODE, ClientHandshake, ServerHandshake
from mqttmesh.config import load_settings
from mqttmesh.errors import HandshakeError
from mqttmesh.runtime.dist_transport import DistTransport, cert_matches_host
from tests.cluster.cluster_nodes import ClusterNode, ctl, pick_offset, status_of
from tests.cluster.dist_certs import DistCerts
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

BAD_KINDS = ("expired", "self-signed", "wrong-ca", "wrong-name")


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    certs = DistCerts(base / "certs")
    offset = pick_offset()
    nodes = []
    for i, host in enumerate(("127.0.0.1", "127.0.0.2")):
        cert, key = certs.leaf(f"n{i}", host)
        node = ClusterNode(base / f"n{i}", name=f"mqttmesh{offset}@{host}",
                           config=certs.config(cert, key))
        nodes.append(node)
    for node in nodes:
        node.start()
    yield SimpleNamespace(certs=certs, nodes=nodes, offset=offset, base=base)
    for node in nodes:
        node.stop(timeout=5)


def _transport(certs: DistCerts, name: str, cert: str | None, key: str | None
               ) -> DistTransport:
    ssl_dist = SimpleNamespace(certfile=cert, keyfile=key, cacertfile=certs.ca,
                               verify="verify_peer", server_name_indication=None)
    if cert is None:  # no client certificate: build with a throwaway one, then drop it
        ssl_dist.certfile, ssl_dist.keyfile = certs.leaf("tmp", "127.0.0.3")
    settings = SimpleNamespace(
        node=SimpleNamespace(name=name, dist_listen_min=6369, dist_listen_max=6369),
        cluster=SimpleNamespace(proto_dist="inet_tls", ssl_dist=ssl_dist))
    transport = DistTransport.from_settings(settings, env={})
    if cert is None:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(certs.ca)
        transport.client_ctx = ctx
    return transport


def _bad_leaf(certs: DistCerts, kind: str, host: str) -> tuple[str, str]:
    if kind == "expired":
        return certs.leaf(f"expired-{host}", host, days=-1)
    if kind == "self-signed":
        return certs.leaf(f"self-{host}", host, signer="self")
    if kind == "wrong-ca":
        return certs.leaf(f"otherca-{host}", host, signer="other-ca")
    assert kind == "wrong-name"
    return certs.leaf(f"wrongname-{host}", "127.0.0.9")


def test_tls_cluster_forms_forwards_and_ctl_works(tls_cluster):
    n1, n2 = tls_cluster.nodes
    result = ctl(n2, "cluster", "join", n1.name)
    assert result.code == 0, result.err
    names = sorted([n1.name, n2.name])
    for node in (n1, n2):
        wait_until(lambda node=node: status_of(node)["running_nodes"] == names, 10,
                   what="both running over TLS")
    topic = unique("tls")
    sub = Client(n2.port, host=n2.host).connect()
    sub.subscribe(f"{topic}/#", qos=1)
    wait_until(lambda: json.loads(ctl(n1, "route", "explain", f"{topic}/a", "--json").out)
               .get("forward_to") == [n2.name], 10, what="route on n1")
    pub = Client(n1.port, host=n1.host).connect()
    pub.publish(f"{topic}/a", "over tls", qos=1, wait=True)
    assert sub.expect(timeout=10).payload == b"over tls"
    pub.close()
    sub.close()


def test_node_refuses_clients_with_bad_or_no_certificate(tls_cluster):
    certs, (n1, _n2) = tls_cluster.certs, tls_cluster.nodes
    settings = load_settings(str(n1.config_path), {})
    me = f"mqttmesh{tls_cluster.offset}@127.0.0.3"
    host = "127.0.0.3"

    async def attempt(transport: DistTransport) -> str:
        hs = ClientHandshake(settings.node.cookie, KIND_NODE, me, settings.cluster.name,
                             "core")
        try:
            link = await transport.open_link(n1.name, "dist", hs, host, timeout=5)
        except HandshakeError as exc:
            return str(exc)
        link.close("test")
        return "accepted"

    good = _transport(certs, me, *certs.leaf("good-client", host))
    assert asyncio.run(attempt(good)) == "accepted"  # the control: a valid certificate
    for kind in (*BAD_KINDS, "missing"):
        cert, key = (None, None) if kind == "missing" else _bad_leaf(certs, kind, host)
        outcome = asyncio.run(attempt(_transport(certs, me, cert, key)))
        assert outcome != "accepted", kind
        if kind == "wrong-name":  # chain is valid: refused at HELLO by the name check
            assert "does not name 127.0.0.3" in outcome, outcome
    log = n1.log_path.read_text()
    assert "link refused: TLS handshake failed" in log
    assert "address=127.0.0.3:" in log or '"address": "127.0.0.3:' in log
    assert "does not name 127.0.0.3" in log
    assert "mqttmesh-test-cookie" not in log


def _serve_once(transport: DistTransport, host: str, port: int, name: str, cookie: str,
                cluster: str, ready: threading.Event, stop: threading.Event,
                errors: list[str]) -> None:
    async def main() -> None:
        sock = transport.bind(host, port, "distribution")

        async def handle(reader, writer):
            try:
                link = await transport.accept_link(reader, writer,
                                                   ServerHandshake(cookie, name, cluster))
            except HandshakeError as exc:
                errors.append(str(exc))
                return
            errors.append("accepted")
            link.close("test")

        server = await transport.serve(handle, sock,
                                       lambda address, reason: errors.append(reason))
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        server.close()

    asyncio.run(main())


def test_node_refuses_servers_with_bad_certificates(tls_cluster):
    certs, (n1, _n2) = tls_cluster.certs, tls_cluster.nodes
    settings = load_settings(str(n1.config_path), {})
    host = "127.0.0.3"
    fake = f"mqttmesh{tls_cluster.offset}@{host}"
    expected = {"expired": "expired", "self-signed": "self-signed", "wrong-ca": "issuer",
                "wrong-name": "mismatch"}
    for kind in BAD_KINDS:
        transport = _transport(certs, fake, *_bad_leaf(certs, kind, host))
        ready, stop, errors = threading.Event(), threading.Event(), []
        thread = threading.Thread(target=_serve_once, args=(
            transport, host, tls_cluster.offset + 4370, fake, settings.node.cookie,
            settings.cluster.name, ready, stop, errors), daemon=True)
        thread.start()
        try:
            assert ready.wait(10)
            result = ctl(n1, "cluster", "join", fake)
        finally:
            stop.set()
            thread.join(10)
        assert result.code != 0, kind
        assert "TLS handshake failed" in result.err and expected[kind] in result.err, \
            (kind, result.err)
        assert "accepted" not in errors, kind
    log = n1.log_path.read_text()
    assert "certificate has expired" in log and f"address={host}:" in log


def test_bad_certfile_stops_startup_naming_the_key(tmp_path: Path):
    certs = DistCerts(tmp_path / "certs")
    node = ClusterNode(tmp_path / "n", name=f"mqttmesh{pick_offset()}@127.0.0.1",
                       config=certs.config(str(tmp_path / "nope.pem"), str(tmp_path / "x.key")))
    node.write_config()
    proc = subprocess.run([sys.executable, "-m", "mqttmesh",
                           "foreground", "-c", str(node.config_path)], capture_output=True,
                          text=True, timeout=30, env=node.environment(), cwd=node.workdir)
    assert proc.returncode != 0
    assert "cluster.ssl_dist.certfile" in proc.stdout + proc.stderr


def test_certificate_name_matching():
    cert = {"subjectAltName": (("DNS", "*.example.com"), ("IP Address", "::1"),
                               ("IP Address", "10.0.0.1"))}
    assert cert_matches_host(cert, "n1.example.com")
    assert not cert_matches_host(cert, "a.b.example.com")
    assert cert_matches_host(cert, "0:0::1") and cert_matches_host(cert, "10.0.0.1")
    assert not cert_matches_host(cert, "10.0.0.2") and not cert_matches_host(None, "x")


def test_verify_none_encrypts_without_checking_certificates(tmp_path: Path):
    certs = DistCerts(tmp_path / "certs")
    cert, key = certs.leaf("selfie", "127.0.0.9", signer="self")   # nobody would trust it
    ssl_dist = SimpleNamespace(certfile=cert, keyfile=key, cacertfile=None,
                               verify="verify_none", server_name_indication=None)

    def make(name: str) -> DistTransport:
        return DistTransport.from_settings(SimpleNamespace(
            node=SimpleNamespace(name=name, dist_listen_min=1, dist_listen_max=1),
            cluster=SimpleNamespace(proto_dist="inet_tls", ssl_dist=ssl_dist)), env={})

    async def main() -> str:
        from mqttmesh.config import dist_port
        server_name = f"mqttmesh{pick_offset()}@127.0.0.1"
        server = make(server_name)
        sock = server.bind("127.0.0.1", dist_port(server_name), "distribution")
        seen: list[str] = []

        async def handle(reader, writer):
            link = await server.accept_link(reader, writer, ServerHandshake("k", server_name,
                                                                            "c"))
            seen.append(str(writer.get_extra_info("ssl_object").version()))
            link.close("done")

        srv = await server.serve(handle, sock)
        try:
            hs = ClientHandshake("k", KIND_NODE, "other@127.0.0.1", "c", "core")
            link = await make("other@127.0.0.1").open_link(server_name, "dist", hs, None)
            link.close("done")
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.02)
        finally:
            srv.close()
        return seen[0]

    assert asyncio.run(main()).startswith("TLSv1.")
