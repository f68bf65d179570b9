"""$SYS topics end to end (node with sys_topics.sys_msg_interval = 1s)."""

from __future__ import annotations

import pytest

import mqttmesh


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory(sys_msg_interval="1s")


def _base(node) -> str:
    return f"$SYS/brokers/{node.name}"


def test_version(node, mqtt, version):
    sub = mqtt()
    sub.subscribe(_base(node) + "/version", qos=0)
    msg = sub.expect(timeout=3)
    assert msg.payload.decode() == mqttmesh.__version__
    assert msg.retain is False  # EMQX publishes $SYS not retained


@pytest.mark.parametrize("suffix", ["uptime", "datetime", "sysdescr"])
def test_node_facts(node, mqtt, version, suffix):
    sub = mqtt()
    sub.subscribe(f"{_base(node)}/{suffix}", qos=0)
    assert sub.expect(timeout=3).payload


def test_clients_connected_counts_us(node, mqtt, version):
    sub = mqtt()
    sub.subscribe(_base(node) + "/clients/connected", qos=0)
    assert int(sub.expect(timeout=3).payload) >= 1


def test_stats_and_metrics(node, mqtt, version):
    sub = mqtt()
    sub.subscribe([(_base(node) + "/stats/#", 0), (_base(node) + "/metrics/#", 0)])
    seen = {}
    while not ({"stats/connections/count", "metrics/messages/received"} <= set(seen)):
        msg = sub.expect(timeout=3)
        seen[msg.topic[len(_base(node)) + 1:]] = msg.payload
    assert int(seen["stats/connections/count"]) >= 1
    assert int(seen["metrics/messages/received"]) >= 0


def test_wildcards_do_not_match_sys(node, mqtt, version, topic):
    # [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $
    everything = mqtt()
    everything.subscribe([("#", 0), ("+/brokers/#", 0)])
    sys_sub = mqtt()
    sys_sub.subscribe("$SYS/#", qos=0)
    sys_sub.expect(timeout=3)  # a $SYS round went out...
    sys_sub.expect(timeout=3)
    for msg in everything.drain():  # ...and "#" got none of it
        assert not msg.topic.startswith("$")


def test_sys_brokers_lists_node(node, mqtt, version):
    sub = mqtt()
    sub.subscribe("$SYS/brokers", qos=0)
    assert node.name in sub.expect(timeout=3).payload.decode()


@pytest.mark.parametrize("version", [4], ids=["v311"])
def test_slow_subscriber_does_not_stall_publishers(node, mqtt, version, topic):
    # A subscriber that never reads must not slow anybody else down: once 8 MB are queued for
    # its socket, QoS 0 messages for it are dropped (metrics/messages/dropped/congested) while
    # the publisher and a healthy QoS 1 subscriber carry on and get everything.
    import time

    from mqttmesh.protocol.packets import ConnAck
    from tests.helpers import RawClient
    from tests.helpers.raw import connect_bytes

    slow = RawClient(node.port, version=4, rcvbuf=4096)
    try:
        slow.send(connect_bytes(f"slow-{topic}", version=4, keepalive=0))
        assert isinstance(slow.read_packets(1)[0], ConnAck)
        name = topic.encode()
        body = b"\x00\x01" + len(name).to_bytes(2, "big") + name + b"\x00"
        slow.send(b"\x82" + bytes([len(body)]) + body)
        slow.read_packets(1)  # SUBACK; from now on the slow subscriber reads nothing
        healthy = mqtt()
        healthy.subscribe(topic, qos=1)
        stats = mqtt()
        stats.subscribe(_base(node) + "/metrics/messages/dropped/congested", qos=0)
        pub = mqtt()
        chunk = b"x" * 65536
        count = _burst_messages(len(chunk))
        infos = [pub.publish(topic, chunk, qos=1, wait=False) for _ in range(count)]
        for info in infos:  # the publisher is never stalled by the slow subscriber
            info.wait_for_publish(10)
        got = healthy.expect_many(count, timeout=20)
        assert len(got) == count
        deadline = time.monotonic() + 5
        dropped = 0
        while dropped == 0 and time.monotonic() < deadline:
            dropped = int(stats.expect(timeout=3).payload)
        assert dropped > 0, "no QoS 0 message was dropped for the congested subscriber"
    finally:
        slow.close()


def _burst_messages(size: int) -> int:
    """Enough messages to overflow the kernel's socket buffers plus the 8 MB high-water mark."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as fh:
            kernel = int(fh.read().split()[2])
    except (OSError, ValueError, IndexError):
        kernel = 4 * 1024 * 1024
    return (kernel + 12 * 1024 * 1024) // size + 1


@pytest.mark.parametrize("version", [5], ids=["v5"])
def test_heartbeat_interval_publishes_uptime_and_datetime(module_node_factory, version):
    beating = module_node_factory(
        sys_msg_interval="1h", config="sys_topics.sys_heartbeat_interval = 1s\n"
    )
    from tests.helpers import Client

    with Client(beating.port, version=version) as sub:
        sub.connect()
        base = f"$SYS/brokers/{beating.name}"
        sub.subscribe([(base + "/uptime", 0), (base + "/datetime", 0), (base + "/version", 0)])
        topics = {sub.expect(timeout=3).topic, sub.expect(timeout=3).topic}
        assert topics == {base + "/uptime", base + "/datetime"}  # version only hourly
