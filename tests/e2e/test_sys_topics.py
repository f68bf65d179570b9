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
