"""Shared subscriptions across the cluster (issue 6): each message to one member cluster-wide."""

from __future__ import annotations

import collections

import pytest

from mqttmesh.config import load_settings
from mqttmesh.mgmt.cluster import call_sync
from tests.cluster.cluster_nodes import ClusterNode, start_cluster
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory):
    made = start_cluster(tmp_path_factory.mktemp("shared"), HOSTS,
                         "mqtt.shared_subscription_strategy = round_robin")
    try:
        yield made
    finally:
        for node in made:
            node.stop(timeout=5)


def shared_list(node: ClusterNode) -> dict:
    settings = load_settings(str(node.config_path), node.environment())
    return call_sync(settings, "shared_list", {})


def test_group_with_members_on_three_nodes_each_message_once(nodes):
    topic = unique("sh")
    share = f"$share/g/{topic}/#"
    members = []
    for node in nodes:
        c = Client(node.port, host=node.host).connect()
        c.subscribe(share, qos=1)
        members.append(c)
    plain = Client(nodes[2].port, host=nodes[2].host).connect()  # a normal subscriber too
    plain.subscribe(f"{topic}/#", qos=1)
    names = sorted(n.name for n in nodes)
    for node in nodes:
        wait_until(lambda node=node: shared_list(node).get(share) == names, 5,
                   what=f"{node.name} knows the group's three nodes")
    pub = Client(nodes[0].port, host=nodes[0].host).connect()
    total = 60
    for i in range(total):
        pub.publish(f"{topic}/{i}", str(i).encode(), qos=1)
    try:
        assert len(plain.expect_many(total, timeout=10)) == total
        got = collections.Counter()
        per_member = []
        wait_until(lambda: sum(c.messages.qsize() for c in members) >= total, 10,
                   what="every message reached the group")
        for c in members:
            msgs = c.drain()
            per_member.append(len(msgs))
            got.update(m.payload for m in msgs)
        for c in members:
            c.expect_none(0.3)
        assert sorted(got) == sorted(str(i).encode() for i in range(total))
        assert set(got.values()) == {1}  # each message once in the group
        assert per_member == [total // 3] * 3  # round_robin over the three nodes
    finally:
        for c in [*members, plain, pub]:
            c.close()


def test_group_members_leave_the_table(nodes):
    topic = unique("shl")
    share = f"$share/q/{topic}"
    c = Client(nodes[1].port, host=nodes[1].host).connect()
    c.subscribe(share, qos=0)
    wait_until(lambda: shared_list(nodes[0]).get(share) == [nodes[1].name], 5,
               what="group known on n1")
    c.disconnect()
    wait_until(lambda: share not in shared_list(nodes[0]), 5, what="group gone on n1")


def test_member_that_leaves_with_unacked_messages_they_go_to_another_member(nodes):
    n1, n2, _ = nodes
    topic = unique("shr")
    share = f"$share/r/{topic}"
    holder = Client(n1.port, host=n1.host)  # clean session: its session ends on disconnect
    holder.paho.manual_ack_set(True)  # receives but never acknowledges
    holder.connect()
    holder.subscribe(share, qos=1)
    other = Client(n2.port, host=n2.host).connect()
    other.subscribe(share, qos=1)
    wait_until(lambda: shared_list(n1).get(share) == sorted([n1.name, n2.name]), 5,
               what="both members' nodes known on n1")
    pub = Client(n1.port, host=n1.host).connect()
    try:
        for i in range(6):
            pub.publish(topic, str(i).encode(), qos=1)
        held = {m.payload for m in holder.expect_many(3, timeout=5)}  # round_robin: 3 each
        got = {m.payload for m in other.expect_many(3, timeout=5)}
        holder.close()  # leaves with 3 unacknowledged QoS 1 messages
        got |= {m.payload for m in other.expect_many(3, timeout=5)}
        assert held <= got
        assert got == {str(i).encode() for i in range(6)}
    finally:
        for c in (holder, other, pub):
            c.close()
