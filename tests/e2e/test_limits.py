"""Limits that protect a node (issue 7 item 6): connection rate, subscriptions per client,
a slow subscriber that never reads (it must not stall the publisher or other subscribers).

``max_connections`` is in test_listeners.py; inflight / queue bounds in tests/broker.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

CONNECT_311 = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"  # empty client id, clean


def _raw_connect(port: int) -> socket.socket | None:
    """A raw 3.1.1 connection: the socket if CONNACK 0 came, None if refused/closed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        sock.sendall(CONNECT_311)
        data = sock.recv(4)
    except OSError:
        data = b""
    if data[:1] == b"\x20" and data[3:4] == b"\x00":
        return sock
    sock.close()
    return None


def test_max_conn_rate_refuses_beyond_rate(module_node_factory):
    node = module_node_factory(config='listeners.tcp.default.max_conn_rate = "5/s"\n')
    opened = [_raw_connect(node.port) for _ in range(20)]
    accepted = [s for s in opened if s is not None]
    # burst = one second's worth (the readiness probe of the test harness took one)
    assert 3 <= len(accepted) <= 10, len(accepted)
    for s in accepted:
        s.close()
    time.sleep(1.2)  # the bucket refills (this is the behaviour under test, not a sync)
    again = _raw_connect(node.port)
    assert again is not None
    again.close()
    assert "max_conn_rate" in node.log_text()


@pytest.mark.parametrize("version,quota_code", [(5, 0x97), (4, 0x80)])
def test_max_subscriptions_per_client(module_node_factory, version, quota_code):
    node = module_node_factory(config="mqtt.max_subscriptions = 2\n")
    with Client(node.port, version=version) as c:
        c.connect()
        t = unique("ms")
        assert c.subscribe(f"{t}/1", qos=1) == [1]
        assert c.subscribe(f"{t}/2", qos=1) == [1]
        assert c.subscribe(f"{t}/3", qos=1) == [quota_code]  # quota exceeded / failure
        assert c.subscribe(f"{t}/1", qos=0) == [0]  # replacing one is not a new one


def test_slow_subscriber_does_not_stall_others(module_node_factory):
    node = module_node_factory()
    topic = unique("slow")
    # a subscriber that never reads, with a tiny receive buffer
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", node.port))
    slow.sendall(CONNECT_311)
    assert slow.recv(4)[:1] == b"\x20"
    encoded = topic.encode()
    body = b"\x00\x01" + len(encoded).to_bytes(2, "big") + encoded + b"\x01"
    slow.sendall(b"\x82" + bytes([len(body)]) + body)
    assert slow.recv(5)[:1] == b"\x90"  # SUBACK; from now on it reads nothing
    fast = Client(node.port).connect()
    fast.subscribe(topic, qos=1)
    pub = Client(node.port).connect()
    payload = b"x" * 4096
    count = 2000  # 8 MB: far beyond the slow one's inflight window, queue and buffers
    started = time.monotonic()
    infos = [pub.publish(topic, payload, qos=1, wait=False) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(30)
        assert info.is_published()
    got = fast.expect_many(count, timeout=30)
    elapsed = time.monotonic() - started
    assert len(got) == count
    assert elapsed < 30
    # the node still serves new clients at once
    with Client(node.port) as other:
        other.connect(timeout=2)
    slow.close()
    fast.close()
    pub.close()
    wait_until(lambda: True, 1)
