"""Retained messages: store, delete, retain handling, wildcard reverse match, expiry."""

from __future__ import annotations

from mqttmesh.broker import Message, RetainedStore
from mqttmesh.protocol.packets import Subscription
from mqttmesh.protocol.properties import Properties
from mqttmesh.testing import BrokerClient


def test_store_match_reverse_with_trie() -> None:
    store = RetainedStore()
    for topic in ["a/b/c", "a/x/c", "a/b", "a/b/c/d", "b/b/c", "$SYS/x", "/lead"]:
        store.set(Message(topic, b"p", retain=True))
    topics = lambda f: sorted(m.topic for m in store.match(f, 0.0))  # noqa: E731
    assert topics("a/+/c") == ["a/b/c", "a/x/c"]
    assert topics("a/b") == ["a/b"]
    assert topics("a/b/#") == ["a/b", "a/b/c", "a/b/c/d"]  # [MQTT-4.7.1-2]
    assert topics("#") == ["/lead", "a/b", "a/b/c", "a/b/c/d", "a/x/c", "b/b/c"]  # [MQTT-4.7.2-1]
    assert topics("+/+") == ["/lead", "a/b"]
    assert topics("$SYS/#") == ["$SYS/x"]
    assert topics("nope/+") == []


def test_empty_payload_deletes() -> None:
    store = RetainedStore()
    store.set(Message("a/b", b"p", retain=True))
    store.set(Message("a/b", b"", retain=True))  # [MQTT-3.3.1-6] [MQTT-3.3.1-7]
    assert len(store) == 0
    assert store.match("#", 0.0) == []
    assert store._root.children == {}


def test_expired_retained_dropped() -> None:
    store = RetainedStore()
    store.set(Message("a", b"p", retain=True, expiry_at=10.0))
    assert len(store.match("a", 9.0)) == 1
    assert store.match("+", 10.0) == []
    assert len(store) == 0


def test_retained_sent_on_subscribe_with_retain_flag(client) -> None:
    pub = client(4)
    pub.connect("pub")
    pub.publish("r/1", b"one", retain=True, qos=1)
    pub.publish("r/2", b"two", retain=True)
    sub = client(4)
    sub.connect("sub")
    sub.subscribe("r/+", qos=1)
    got = sorted((p.topic, p.payload, p.retain, p.qos) for p in sub.publishes())
    assert got == [("r/1", b"one", True, 1), ("r/2", b"two", True, 0)]  # [MQTT-3.3.1-8]


def test_retained_replaced_and_deleted_through_publish(client, broker) -> None:
    pub = client(4)
    pub.connect("pub")
    pub.publish("r", b"one", retain=True)
    pub.publish("r", b"two", retain=True)
    assert broker.retained.get("r").payload == b"two"  # [MQTT-3.3.1-5]
    pub.publish("r", b"", retain=True)
    assert broker.statistics().retained == 0
    sub = client(4)
    sub.connect("sub")
    sub.subscribe("r")
    assert sub.publishes() == []


def test_retain_handling(client) -> None:
    pub = client(5)
    pub.connect("pub")
    pub.publish("r", b"x", retain=True)
    sub = client(5)
    sub.connect("sub")
    sub.subscribe(Subscription("r", 0, retain_handling=2))
    assert sub.publishes() == []  # [MQTT-3.3.1-11]
    sub.unsubscribe("r")
    sub.subscribe(Subscription("r", 0, retain_handling=1))
    assert len(sub.publishes()) == 1  # new subscription [MQTT-3.3.1-10]
    sub.subscribe(Subscription("r", 0, retain_handling=1))
    assert sub.publishes() == []  # already existed
    sub.subscribe(Subscription("r", 0, retain_handling=0))
    assert len(sub.publishes()) == 1  # [MQTT-3.3.1-9]


def test_v311_resubscribe_resends_retained(client) -> None:
    pub = client(4)
    pub.connect("pub")
    pub.publish("r", b"x", retain=True)
    sub = client(4)
    sub.connect("sub")
    sub.subscribe("r")
    sub.subscribe("r")
    assert len(sub.publishes()) == 2  # [MQTT-3.8.4-3]


def test_retained_not_sent_on_shared_subscription(client) -> None:
    pub = client(5)
    pub.connect("pub")
    pub.publish("r", b"x", retain=True)
    sub = client(5)
    sub.connect("sub")
    sub.subscribe("$share/g/r")
    assert sub.publishes() == []


def test_retained_message_expiry_remaining(client, clock) -> None:
    pub = client(5)
    pub.connect("pub")
    pub.publish("r", b"x", retain=True, properties=Properties(message_expiry_interval=10))
    clock.advance(3)
    sub = client(5)
    sub.connect("sub")
    sub.subscribe("r")
    [p] = sub.publishes()
    assert p.properties.message_expiry_interval == 7
    clock.advance(8)
    late = client(5)
    late.connect("late")
    late.subscribe("r")
    assert late.publishes() == []


def test_retain_unavailable_not_stored(make_broker, clock) -> None:
    broker = make_broker(retain_available=False)
    broker.publish(Message("r", b"x", retain=True), clock.now)
    assert len(broker.retained) == 0


def test_dollar_topics_not_matched_by_leading_wildcard(client) -> None:
    pub = client(4)
    pub.connect("pub")
    pub.publish("$SYS/x", b"s", retain=True)
    pub.publish("$SYS/x", b"live")
    sub = client(4)
    sub.connect("sub")
    sub.subscribe("#", "+/x")
    pub.publish("$SYS/x", b"live")
    assert sub.publishes() == []  # [MQTT-4.7.2-1]
    sub.subscribe("$SYS/#")
    assert [p.payload for p in sub.publishes()] == [b"s"]
    _ = BrokerClient
