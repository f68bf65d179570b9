"""Security of the cluster ports before authentication (SPEC §4, §5; issue 7).

One real node (plain ``inet_tcp``); the test talks to its distribution and RPC ports with
the production link code, through a small TCP proxy that records every byte, and with raw
sockets: wrong cookie, cookie on the wire, replayed handshake, 100 MB of garbage, and a
connection that never completes the handshake.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time

import pytest

from mqttmesh.cluster import KIND_CTL, KIND_NODE, ClientHandshake, v1
from mqttmesh.config import load_settings
from mqttmesh.errors import HandshakeError
from mqttmesh.runtime.dist_transport import DistTransport
from mqttmesh.runtime.peer_link import HANDSHAKE_TIMEOUT
from tests.cluster.cluster_nodes import ClusterNode, pick_offset, status_of
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

COOKIE = "mqttmesh-test-cookie"
WRONG = "not-the-cookie-8e1f"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    offset = pick_offset()
    n = ClusterNode(tmp_path_factory.mktemp("sec") / "n", name=f"mqttmesh{offset}@127.0.0.1")
    n.start()
    n.settings = load_settings(str(n.config_path), {})
    yield n
    n.stop(timeout=5)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _ports(n) -> tuple[int, int]:
    off = int(n.name.split("@")[0].removeprefix("mqttmesh"))
    return 4370 + off, 5370 + off


async def _link(n, cookie: str, kind: str = KIND_NODE, port: int | None = None,
                name: str = "mqttmesh999@127.0.0.3"):
    hs = ClientHandshake(cookie, kind, n.name if kind == KIND_CTL else name,
                         n.settings.cluster.name, "core")
    transport = DistTransport("inet_tcp")
    if port is None:
        return await transport.open_link(n.name, "dist", hs, "127.0.0.3")
    from mqttmesh.runtime.peer_link import open_link
    return await open_link("127.0.0.1", port, hs, "127.0.0.3")


class Proxy:
    """A one-connection-at-a-time TCP relay that records both directions."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = bytearray()    # client -> node
        self.down = bytearray()  # node -> client
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for a, b, buf in ((client, server, self.up), (server, client, self.down)):
                threading.Thread(target=self._pipe, args=(a, b, buf), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket, buf: bytearray) -> None:
        try:
            while data := a.recv(65536):
                buf += data
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_wrong_cookie_refused_fast_logged_once_without_secret(node):
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(HandshakeError, match="wrong cookie"):
            asyncio.run(_link(node, WRONG))
        assert time.monotonic() - started < 1.0
    wait_until(lambda: "wrong cookie" in node.log_text(), 5, what="refusal logged")
    log = node.log_text(tail=None)
    lines = [line for line in log.splitlines() if "wrong cookie" in line]
    assert len(lines) == 1, lines                    # once per (peer host, reason) a minute
    assert "address=127.0.0.3:" in lines[0] and "claimed=mqttmesh999@127.0.0.3" in lines[0]
    assert COOKIE not in log and WRONG not in log


def test_cookie_never_on_the_wire_and_replay_refused(node):
    dist, _ = _ports(node)
    proxy = Proxy(("127.0.0.1", dist))
    try:
        async def session() -> None:
            hs = ClientHandshake(COOKIE, KIND_CTL, node.name, node.settings.cluster.name,
                                 "ctl")
            from mqttmesh.runtime.peer_link import open_link
            link = await open_link("127.0.0.1", proxy.port, hs, None)
            reader = asyncio.get_running_loop().create_task(link.run(lambda _l, _m: None))
            status = await link.request("status", {})
            assert node.name in status["running_nodes"]
            link.close("done")
            reader.cancel()
        asyncio.run(session())
        wait_until(lambda: len(proxy.down) > 0 and len(proxy.up) > 0, 5, what="capture")
        captured = bytes(proxy.up + proxy.down)
        for form in (COOKIE.encode(), COOKIE.encode().hex().encode(),
                     COOKIE.encode("utf-16-le")):
            assert form not in captured
        # Replay what the client sent, byte for byte, on a fresh connection.
        with socket.create_connection(("127.0.0.1", dist), timeout=5) as sock:
            sock.sendall(bytes(proxy.up))
            answer = bytearray()
            while data := sock.recv(65536):
                answer += data
        assert b"wrong cookie" in answer
        assert node.name.encode() in answer   # the CHALLENGE came, with a fresh nonce ...
        assert b"running_nodes" not in answer  # ... and no request was served
    finally:
        proxy.close()
    # A node-kind link (what nodes open to each other) through a second capture.
    proxy2 = Proxy(("127.0.0.1", dist))
    try:
        async def node_link() -> None:
            hs = ClientHandshake(COOKIE, KIND_NODE, "mqttmesh998@127.0.0.3",
                                 node.settings.cluster.name, "core")
            from mqttmesh.runtime.peer_link import open_link
            link = await open_link("127.0.0.1", proxy2.port, hs, None)
            link.send([v1.HEARTBEAT])   # one frame after authentication
            await link.drain()
            link.close("done")
        asyncio.run(node_link())
        wait_until(lambda: len(proxy2.down) > 0, 5, what="capture")
        assert COOKIE.encode() not in bytes(proxy2.up + proxy2.down)
        assert b"mqttmesh998@127.0.0.3" in bytes(proxy2.up)   # it was captured, in clear
    finally:
        proxy2.close()


def _flood(port: int, total: int, counter: list[int]) -> None:
    rng = os.urandom(1 << 20)
    junk_frames = (struct.pack(">I", 4000) + rng[:4000]) * 256   # plausible frame sizes
    chunks = (rng, junk_frames)
    sent = i = 0
    while sent < total:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                while sent < total:
                    sent += sock.send(chunks[i % 2])
        except OSError:
            pass
        i += 1
    counter.append(sent)


def test_garbage_before_authentication_costs_no_memory(node):
    dist, rpc = _ports(node)
    pid = node.proc.pid
    warm: list[int] = []
    for port in (dist, rpc):   # warm-up: first refusals allocate log and refusal state
        _flood(port, 4 << 20, warm)
    time.sleep(0.5)
    before = _rss_kb(pid)
    sent: list[int] = []
    threads = [threading.Thread(target=_flood, args=(port, 100 << 20, sent))
               for port in (dist, rpc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(sent) >= 200 << 20
    time.sleep(0.5)
    grown = _rss_kb(pid) - before
    print(f"garbage: {sum(sent) >> 20} MB sent, RSS {before} KB -> +{grown} KB")
    assert grown < 1024, f"RSS grew by {grown} KB"
    assert node.alive()
    assert status_of(node)["running_nodes"] == [node.name]   # still serving ctl ...
    topic = unique("sec")
    with Client(node.port, host=node.host).connect() as c:    # ... and MQTT
        c.subscribe(topic, qos=1)
        c.publish(topic, "alive", qos=1, wait=True)
        assert c.expect(timeout=5).payload == b"alive"


def test_silent_connection_closed_after_handshake_timeout(node):
    dist, rpc = _ports(node)
    socks = [socket.create_connection(("127.0.0.1", p)) for p in (dist, rpc)]
    socks[0].sendall(struct.pack(">I", 100) + b"\x93")   # half a HELLO, then silence
    started = time.monotonic()
    try:
        for sock in socks:
            sock.settimeout(HANDSHAKE_TIMEOUT + 5)
            while sock.recv(4096):
                pass
        elapsed = time.monotonic() - started
        assert HANDSHAKE_TIMEOUT - 0.5 <= elapsed < HANDSHAKE_TIMEOUT + 3, elapsed
    finally:
        for sock in socks:
            sock.close()
    assert "no handshake in time" in node.log_text(tail=None)


def test_wrong_cookie_refused_on_the_rpc_port(node):
    _, rpc = _ports(node)
    with pytest.raises(HandshakeError, match="wrong cookie"):
        asyncio.run(_link(node, WRONG, port=rpc))
    wait_until(lambda: "rpc link refused: wrong cookie" in node.log_text(), 5, what="log")
