"""MQTT 5 only features end to end: subscription identifiers, topic aliases, message expiry.

(MQTT 3.1.1 has none of them, so these tests run for version 5 only.)
"""

from __future__ import annotations

import time

import pytest

from mqttmesh.protocol.packets import ConnAck, Disconnect, Publish
from tests.helpers import RawClient
from tests.helpers.raw import connect_bytes


@pytest.fixture
def version() -> int:
    return 5


@pytest.fixture(scope="module")
def node(module_node_factory):
    # a small Topic Alias Maximum so that "alias above the maximum" can be tested
    return module_node_factory(config="mqtt.max_topic_alias = 10\n")


# -- subscription identifiers -------------------------------------------------------------------

def test_subscription_identifier_delivered(mqtt, topic):
    # [MQTT-3.3.4-3] the PUBLISH carries the identifier of the matching subscription
    sub = mqtt()
    sub.subscribe(topic + "/#", qos=1, subscription_id=42)
    mqtt().publish(topic + "/a", b"x", qos=1)
    assert sub.expect().prop("SubscriptionIdentifier") == [42]


def test_overlapping_subscriptions_carry_their_identifiers(mqtt, topic):
    # [MQTT-3.3.4-4] [MQTT-3.3.4-5] one copy per subscription with its id, or one with both
    sub = mqtt()
    sub.subscribe(topic + "/#", qos=1, subscription_id=1)
    sub.subscribe(topic + "/+", qos=1, subscription_id=2)
    mqtt().publish(topic + "/a", b"x", qos=1)
    first = sub.expect()
    ids = set(first.prop("SubscriptionIdentifier") or [])
    if ids != {1, 2}:
        second = sub.expect()
        ids |= set(second.prop("SubscriptionIdentifier") or [])
    assert ids == {1, 2}


def test_no_identifier_without_one(mqtt, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    mqtt().publish(topic, b"x", qos=1)
    assert not sub.expect().prop("SubscriptionIdentifier")


def test_identifier_on_retained_delivery(mqtt, topic):
    mqtt().publish(topic, b"r", qos=1, retain=True)
    sub = mqtt()
    sub.subscribe(topic, qos=1, subscription_id=7)
    msg = sub.expect()
    assert msg.retain and msg.prop("SubscriptionIdentifier") == [7]


# -- topic aliases ------------------------------------------------------------------------------

def test_publish_with_topic_alias(node, mqtt, topic):
    # [MQTT-3.3.2-12] first PUBLISH sets alias 1 -> topic; the next uses the alias only
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    with RawClient(node.port, version=5) as raw:
        raw.send(connect_bytes(f"alias-{topic}", version=5))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        name = topic.encode()
        first = len(name).to_bytes(2, "big") + name + b"\x00\x01" + b"\x03\x23\x00\x01" + b"one"
        raw.send(b"\x32" + bytes([len(first)]) + first)
        second = b"\x00\x00" + b"\x00\x02" + b"\x03\x23\x00\x01" + b"two"
        raw.send(b"\x32" + bytes([len(second)]) + second)
        raw.read_packets(2)  # PUBACKs
    got = sub.expect_many(2)
    assert [(m.topic, m.payload) for m in got] == [(topic, b"one"), (topic, b"two")]
    assert all(m.prop("TopicAlias") is None for m in got)  # aliases are per connection


def test_unknown_topic_alias_is_protocol_error(node):
    # [MQTT-3.3.2-7] an alias never set, with an empty topic: DISCONNECT 0x82
    with RawClient(node.port, version=5) as raw:
        raw.send(connect_bytes("alias-unknown", version=5))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        body = b"\x00\x00" + b"\x03\x23\x00\x05" + b"x"
        raw.send(b"\x30" + bytes([len(body)]) + body)
        result = raw.read_until_close(timeout=1.0)
    assert result.closed
    if result.packets:
        assert isinstance(result.packets[0], Disconnect)
        assert result.packets[0].reason_code == 0x82


def test_topic_alias_above_maximum_refused(node):
    # [MQTT-3.3.2-9] alias greater than the announced Topic Alias Maximum: DISCONNECT 0x94
    with RawClient(node.port, version=5) as raw:
        raw.send(connect_bytes("alias-too-big", version=5))
        connack = raw.read_packets(1)[0]
        maximum = connack.properties.topic_alias_maximum or 0
        if maximum >= 65535:
            pytest.skip("Topic Alias Maximum is 65535: nothing is above it")
        alias = (maximum + 1).to_bytes(2, "big")
        body = b"\x00\x01a" + b"\x03\x23" + alias + b"x"
        raw.send(b"\x30" + bytes([len(body)]) + body)
        result = raw.read_until_close(timeout=1.0)
    assert result.closed
    if result.packets:
        assert result.packets[0].reason_code == 0x94


def test_server_respects_client_topic_alias_maximum(mqtt, topic):
    # a client announcing Topic Alias Maximum may receive aliases; paho resolves them, so the
    # topic seen by the application must always be the full one
    sub = mqtt(connect_properties={"TopicAliasMaximum": 10})
    sub.subscribe(topic, qos=1)
    pub = mqtt()
    for i in range(3):
        pub.publish(topic, str(i).encode(), qos=1)
    assert [m.topic for m in sub.expect_many(3)] == [topic] * 3


# -- message expiry -----------------------------------------------------------------------------

def test_message_expiry_interval_is_decremented(mqtt, topic):
    # [MQTT-3.3.2-6] the forwarded Message Expiry Interval is reduced by the time waited
    client_id = f"expiry-{topic}"
    sub = mqtt(client_id=client_id, clean=False, session_expiry=300)
    sub.subscribe(topic, qos=1)
    sub.disconnect()
    mqtt().publish(topic, b"x", qos=1, MessageExpiryInterval=30)
    time.sleep(1.1)
    again = mqtt(client_id=client_id, clean=False, session_expiry=300)
    msg = again.expect()
    assert msg.payload == b"x"
    assert 0 < msg.prop("MessageExpiryInterval") <= 29


def test_expired_queued_message_not_delivered(mqtt, topic):
    # [MQTT-3.3.2-5] an expired message is not delivered to a reconnecting session
    client_id = f"expired-{topic}"
    sub = mqtt(client_id=client_id, clean=False, session_expiry=300)
    sub.subscribe(topic, qos=1)
    sub.disconnect()
    pub = mqtt()
    pub.publish(topic, b"short", qos=1, MessageExpiryInterval=1)
    pub.publish(topic, b"long", qos=1, MessageExpiryInterval=300)
    time.sleep(2.1)  # expiry is the behaviour under test
    again = mqtt(client_id=client_id, clean=False, session_expiry=300)
    assert again.expect().payload == b"long"
    again.expect_none(0.3)


def test_expired_retained_message_not_delivered(mqtt, topic):
    pub = mqtt()
    pub.publish(topic, b"ephemeral", qos=1, retain=True, MessageExpiryInterval=1)
    time.sleep(2.1)
    sub = mqtt()
    sub.subscribe([(topic, 1), (topic + "/sentinel", 1)])
    pub.publish(topic + "/sentinel", b"end", qos=1)
    assert sub.expect().topic == topic + "/sentinel"


def test_reason_string_not_required(mqtt, topic):
    # Request Problem Information 0 is accepted
    client = mqtt(connect_properties={"RequestProblemInformation": 0})
    assert client.connack[0] == 0


def test_receive_maximum_is_respected(node, mqtt, topic):
    # [MQTT-3.3.4-9] no more unacknowledged QoS 1 PUBLISHes than the client's Receive Maximum
    with RawClient(node.port, version=5) as raw:
        receive_max = b"\x03\x21\x00\x02"  # properties length 3: Receive Maximum 2
        var = b"\x00\x04MQTT\x05\x02\x00\x3c" + receive_max
        cid = f"rm-{topic}".encode()
        payload = len(cid).to_bytes(2, "big") + cid
        raw.send(b"\x10" + bytes([len(var + payload)]) + var + payload)
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        name = topic.encode()
        sub = b"\x00\x01\x00" + len(name).to_bytes(2, "big") + name + b"\x01"
        raw.send(b"\x82" + bytes([len(sub)]) + sub)
        raw.read_packets(1)  # SUBACK
        pub = mqtt()
        for i in range(5):
            pub.publish(topic, str(i).encode(), qos=1)
        got = raw.read_until_close(timeout=0.7).packets
        publishes = [p for p in got if isinstance(p, Publish)]
        assert len(publishes) == 2
        for p in publishes:  # ack them: the next two come
            raw.send(b"\x40\x02" + p.packet_id.to_bytes(2, "big"))
        more = [p for p in raw.read_packets(2) if isinstance(p, Publish)]
        assert len(more) == 2
