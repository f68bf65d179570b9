"""Keep alive and idle timeouts end to end (node with mqtt.idle_timeout = 1s)."""

from __future__ import annotations

import time

import pytest

from mqttmesh.protocol.packets import ConnAck, PingResp
from tests.helpers import RawClient
from tests.helpers.raw import connect_bytes


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory(listeners=("tcp", "ws"), config="mqtt.idle_timeout = 1s\n")


def test_silent_client_closed_after_one_and_a_half_keepalive(node, version):
    # [MQTT-3.1.2-24] no packet within 1.5 x keep alive: the server closes the connection
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"silent-{version}", version=version, keepalive=1))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        result = raw.read_until_close(timeout=4.0)
    assert result.closed, "connection still open 4 s after a 1 s keep alive"
    assert result.elapsed >= 1.0, f"closed too early ({result.elapsed:.2f}s)"


def test_pings_keep_the_connection(node, version):
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"pinging-{version}", version=version, keepalive=1))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        deadline = time.monotonic() + 2.2
        while time.monotonic() < deadline:  # 2.2 s of pings at half the keep alive
            raw.send("c0 00")
            assert isinstance(raw.read_packets(1, timeout=1.0)[0], PingResp)
            time.sleep(0.5)


def test_keepalive_zero_disables_timeout(node, version):
    # [MQTT-3.1.2-10] keep alive 0: no timeout
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"forever-{version}", version=version, keepalive=0))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        result = raw.read_until_close(timeout=1.8)
    assert not result.closed


def test_no_connect_closed_after_idle_timeout(node):
    # a TCP connection that never sends CONNECT is closed after mqtt.idle_timeout (1 s here)
    with RawClient(node.port) as raw:
        result = raw.read_until_close(timeout=4.0)
    assert result.closed
    assert result.elapsed >= 0.8


def test_will_sent_on_keepalive_timeout(node, version):
    from tests.helpers import Client

    sub = Client(node.port, version=version).connect()
    try:
        topic = f"ka-will-{version}"
        sub.subscribe(topic, qos=0)
        with RawClient(node.port, version=version) as raw:
            raw.send(connect_bytes(f"ka-dying-{version}", version=version, keepalive=1,
                                   will=(topic, b"timed out", 0, False)))
            assert isinstance(raw.read_packets(1)[0], ConnAck)
            assert sub.expect(timeout=5).payload == b"timed out"
    finally:
        sub.close()


def test_websocket_without_upgrade_closed_after_idle_timeout(node):
    # the HTTP upgrade never comes: the link applies mqtt.idle_timeout itself
    with RawClient(node.ports["ws"]) as raw:
        raw.send(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")  # an incomplete request
        result = raw.read_until_close(timeout=4.0)
    assert result.closed
    assert result.elapsed >= 0.8


def test_websocket_without_connect_closed_after_idle_timeout(node):
    # upgraded, but no CONNECT: the broker's idle timeout applies
    request = (
        "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    with RawClient(node.ports["ws"]) as raw:
        raw.send(request.encode())
        result = raw.read_until_close(timeout=4.0)
    assert result.closed
    assert result.data.startswith(b"HTTP/1.1 101")
