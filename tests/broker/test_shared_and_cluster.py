"""Shared subscriptions on one node, ClusterHooks route events, forward and dispatch_remote."""

from __future__ import annotations

from collections import Counter

import pytest

from mqttmesh.broker import Message
from mqttmesh.protocol.packets import Disconnect, Subscribe, Subscription
from mqttmesh.testing import BrokerClient

from .conftest import RecordingHooks


def group_of(broker, clock, n, topic_filter="$share/g/t", version=4):
    members = []
    for i in range(n):
        c = BrokerClient(broker, clock, version)
        c.connect(f"m{i}")
        c.subscribe(topic_filter)
        members.append(c)
    pub = BrokerClient(broker, clock, version)
    pub.connect("pub")
    return members, pub


def received_by(members):
    return [len(m.publishes()) for m in members]


def test_round_robin(make_broker, clock) -> None:
    broker = make_broker(shared_subscription_strategy="round_robin")
    members, pub = group_of(broker, clock, 3)
    for _ in range(6):
        pub.publish("t", b"x")
    assert received_by(members) == [2, 2, 2]  # [MQTT-4.8.2-?] one member per message


def test_queue_prefix_is_a_group(make_broker, clock) -> None:
    broker = make_broker()
    members, pub = group_of(broker, clock, 2, "$queue/t")
    for _ in range(4):
        pub.publish("t", b"x")
    assert received_by(members) == [2, 2]


@pytest.mark.parametrize("strategy", ["random", "local"])
def test_random_and_local_pick_one(make_broker, clock, strategy) -> None:
    broker = make_broker(shared_subscription_strategy=strategy)
    members, pub = group_of(broker, clock, 3)
    for _ in range(30):
        pub.publish("t", b"x")
    counts = received_by(members)
    assert sum(counts) == 30 and all(counts)


def test_sticky(make_broker, clock) -> None:
    broker = make_broker(shared_subscription_strategy="sticky")
    members, pub = group_of(broker, clock, 3)
    for _ in range(5):
        pub.publish("t", b"x")
    counts = received_by(members)
    assert sorted(counts) == [0, 0, 5]
    chosen = counts.index(5)
    members[chosen].send(Disconnect())
    for _ in range(4):
        pub.publish("t", b"x")
    counts = received_by(members)
    assert counts[chosen] == 0 and sorted(counts) == [0, 0, 4]


def test_hash_topic_and_clientid(make_broker, clock) -> None:
    broker = make_broker(shared_subscription_strategy="hash_topic")
    members, pub = group_of(broker, clock, 3, "$share/g/t/+")
    for _ in range(3):
        pub.publish("t/a", b"x")
    assert sorted(received_by(members)) == [0, 0, 3]
    broker = make_broker(shared_subscription_strategy="hash_clientid")
    members, pub = group_of(broker, clock, 3, "$share/g/t/+")
    for topic in ("t/a", "t/b", "t/c"):
        pub.publish(topic, b"x")
    assert sorted(received_by(members)) == [0, 0, 3]


def test_two_groups_and_plain_subscriber_each_get_it(make_broker, clock) -> None:
    broker = make_broker()
    g1, pub = group_of(broker, clock, 2, "$share/a/t")
    g2 = []
    for i in range(2):
        c = BrokerClient(broker, clock, 4)
        c.connect(f"b{i}")
        c.subscribe("$share/b/t")
        g2.append(c)
    plain = BrokerClient(broker, clock, 4)
    plain.connect("plain")
    plain.subscribe("t")
    pub.publish("t", b"x")
    assert sum(received_by(g1)) == 1 and sum(received_by(g2)) == 1
    assert len(plain.publishes()) == 1


def test_shared_prefers_connected_members(make_broker, clock) -> None:
    broker = make_broker()
    members, pub = group_of(broker, clock, 1)
    offline = BrokerClient(broker, clock, 4)
    offline.connect("off", clean_start=False)
    offline.subscribe("$share/g/t")
    offline.channel.handle_closed(clock.now)
    for _ in range(4):
        pub.publish("t", b"x")
    assert received_by(members) == [4]


def test_no_local_on_shared_is_protocol_error(client) -> None:
    c = client(5)
    c.connect("a")
    c.send(Subscribe(1, (Subscription("$share/g/t", 0, no_local=True),)))
    assert c.take(Disconnect).reason_code == 0x82  # [MQTT-3.8.3-4]


def test_route_events_first_and_last_subscriber(make_broker, clock) -> None:
    hooks = RecordingHooks()
    broker = make_broker(cluster=hooks)
    a = BrokerClient(broker, clock, 5)
    a.connect("a")
    b = BrokerClient(broker, clock, 5)
    b.connect("b")
    a.subscribe("x/+")
    b.subscribe("x/+")
    a.subscribe("$share/g/x/+")
    assert hooks.events == [("added", "x/+")]  # shared routes by its real filter
    assert sorted(broker.local_filters()) == ["x/+"]
    a.unsubscribe("x/+")
    b.unsubscribe("x/+")
    assert hooks.events == [("added", "x/+")]
    a.send(Disconnect())  # clean session ends: its shared subscription goes
    assert hooks.events == [("added", "x/+"), ("removed", "x/+")]
    assert list(broker.local_filters()) == []


def test_route_removed_on_session_expiry(make_broker, clock) -> None:
    from mqttmesh.protocol.properties import Properties

    from .conftest import tick

    hooks = RecordingHooks()
    broker = make_broker(cluster=hooks)
    a = BrokerClient(broker, clock, 5)
    a.connect("a", properties=Properties(session_expiry_interval=5))
    a.subscribe("$share/g/s/#")
    a.channel.handle_closed(clock.now)
    assert hooks.events == [("added", "s/#")]
    tick(broker, clock, 6)
    assert hooks.events == [("added", "s/#"), ("removed", "s/#")]


def test_forward_every_local_publish_and_dispatch_remote(make_broker, clock) -> None:
    hooks = RecordingHooks()
    broker = make_broker(cluster=hooks, node_name="n1@127.0.0.1")
    sub = BrokerClient(broker, clock, 4)
    sub.connect("sub")
    sub.subscribe("t")
    pub = BrokerClient(broker, clock, 4)
    pub.connect("pub")
    pub.publish("t", b"local")
    pub.publish("nobody/here", b"x")
    assert [(m.topic, m.sender, m.sender_node) for m in hooks.forwarded] == [
        ("t", "pub", "n1@127.0.0.1"), ("nobody/here", "pub", "n1@127.0.0.1"),
    ]
    remote = Message("t", b"remote", 0, False, sender="other", sender_node="n2@127.0.0.1")
    assert broker.dispatch_remote(remote, clock.now) == 1
    assert len(hooks.forwarded) == 2  # never forwarded again
    assert [p.payload for p in sub.publishes()] == [b"local", b"remote"]
    assert broker.statistics().messages_from_peers == 1


def test_broker_publish_for_sys_topics(broker, clock, client) -> None:
    sub = client(4)
    sub.connect("sub")
    sub.subscribe("$SYS/brokers/+/uptime")
    broker.publish(Message("$SYS/brokers/n/uptime", b"5 seconds"), clock.now)
    assert [p.payload for p in sub.publishes()] == [b"5 seconds"]


def test_qos0_fanout_encodes_once(broker, clock, client) -> None:
    subs = []
    for i in range(5):
        c = client(4)
        c.connect(f"s{i}")
        c.subscribe("t")
        subs.append(c)
    msg = Message("t", b"payload")
    broker.publish(msg, clock.now)
    writes = [s.outlet.writes[-1] for s in subs]
    assert all(w is writes[0] for w in writes)  # the same bytes object (STYLE rule 16)
    assert Counter(len(s.publishes()) for s in subs) == Counter({1: 5})


class SharingHooks(RecordingHooks):
    """A cluster that picks shared-group members itself."""

    def shared_added(self, group: str, real_filter: str) -> None:
        self.events.append(("shared_added", f"{group} {real_filter}"))

    def shared_removed(self, group: str, real_filter: str) -> None:
        self.events.append(("shared_removed", f"{group} {real_filter}"))


def test_cluster_picked_shared_groups(make_broker, clock) -> None:
    hooks = SharingHooks()
    broker = make_broker(cluster=hooks)
    members, pub = group_of(broker, clock, 2, "$share/g/t/+")
    assert hooks.events == [("added", "t/+"), ("shared_added", "g t/+")]
    pub.publish("t/a", b"x")
    assert received_by(members) == [0, 0]  # left to the cluster
    msg = hooks.forwarded[-1]
    assert broker.dispatch_shared(msg, "g", "t/+", clock.now)
    assert sum(received_by(members)) == 1
    assert not broker.dispatch_shared(msg, "other", "t/+", clock.now)
    assert broker.dispatch_remote(Message("t/b", b"y"), clock.now) == 0
    for m in members:
        m.unsubscribe("$share/g/t/+")
    assert hooks.events[-2:] == [("shared_removed", "g t/+"), ("removed", "t/+")]
