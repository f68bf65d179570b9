"""Retained messages end to end: set, replace, delete, wildcard, retain flag, v5 retain handling."""

from __future__ import annotations

import pytest

v5_only = pytest.mark.parametrize("version", [5], ids=["v5"])


def test_retained_delivered_to_new_subscriber(mqtt, version, topic):
    # [MQTT-3.3.1-6] a new subscription gets the retained message, RETAIN flag set
    mqtt().publish(topic, b"kept", qos=1, retain=True)
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    msg = sub.expect()
    assert (msg.payload, msg.retain, msg.qos) == (b"kept", True, 1)


def test_retained_replaced_by_newer(mqtt, version, topic):
    # [MQTT-3.3.1-5] the new retained message replaces the old one
    pub = mqtt()
    pub.publish(topic, b"old", qos=1, retain=True)
    pub.publish(topic, b"new", qos=1, retain=True)
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    assert sub.expect().payload == b"new"
    sub.expect_none(0.2)


def test_empty_payload_deletes_retained(mqtt, version, topic):
    # [MQTT-3.3.1-10] [MQTT-3.3.1-11] zero-length retained payload removes it, is not stored
    pub = mqtt()
    pub.publish(topic, b"gone soon", qos=1, retain=True)
    pub.publish(topic, b"", qos=1, retain=True)
    sub = mqtt()
    sub.subscribe([(topic, 1), (topic + "/sentinel", 1)])
    pub.publish(topic + "/sentinel", b"end", qos=1)
    assert sub.expect().topic == topic + "/sentinel"


def test_live_delivery_clears_retain_flag(mqtt, version, topic):
    # [MQTT-3.3.1-9] to an existing subscription RETAIN is 0 (v5: unless Retain As Published)
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    mqtt().publish(topic, b"live", qos=1, retain=True)
    msg = sub.expect()
    assert msg.payload == b"live" and msg.retain is False


def test_retained_matched_by_wildcard(mqtt, version, topic):
    pub = mqtt()
    for i in range(3):
        pub.publish(f"{topic}/r/{i}", str(i).encode(), qos=1, retain=True)
    sub = mqtt()
    sub.subscribe(topic + "/r/#", qos=1)
    got = sub.expect_many(3)
    assert sorted(m.payload for m in got) == [b"0", b"1", b"2"]
    assert all(m.retain for m in got)


def test_retained_qos_is_downgraded(mqtt, version, topic):
    mqtt().publish(topic, b"q2", qos=2, retain=True)
    sub = mqtt()
    sub.subscribe(topic, qos=0)
    msg = sub.expect()
    assert msg.qos == 0 and msg.retain


def test_retained_qos0_message_is_kept(mqtt, version, topic):
    mqtt().publish(topic, b"q0", qos=0, retain=True)
    # QoS 0 publish has no ack: poll by resubscribing until the retained message is there
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    assert sub.expect().payload == b"q0"


def test_resubscribe_resends_retained(mqtt, version, topic):
    # Retain Handling 0 (and 3.1.1): retained messages are sent on every SUBSCRIBE
    mqtt().publish(topic, b"again", qos=1, retain=True)
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    assert sub.expect().payload == b"again"
    sub.subscribe(topic, qos=1)
    assert sub.expect().payload == b"again"


@v5_only
@pytest.mark.parametrize("handling", [0, 1, 2])
def test_v5_retain_handling(mqtt, version, topic, handling):
    # [MQTT-3.3.1-9..11] 0: always send; 1: only if the subscription is new; 2: never
    mqtt().publish(topic, b"r", qos=1, retain=True)
    sub = mqtt()
    sentinel = topic + "/sentinel"
    sub.subscribe(sentinel, qos=1)
    pub = mqtt()
    for attempt in range(2):
        sub.subscribe(topic, qos=1, retain_handling=handling)
        pub.publish(sentinel, b"end", qos=1)
        got = []
        while True:
            msg = sub.expect()
            if msg.topic == sentinel:
                break
            got.append(msg.payload)
        expected = {0: [b"r"], 1: [b"r"] if attempt == 0 else [], 2: []}[handling]
        assert got == expected, f"attempt {attempt}"


@v5_only
def test_v5_retain_as_published(mqtt, version, topic):
    rap = mqtt()
    rap.subscribe(topic, qos=1, retain_as_published=True)
    plain = mqtt()
    plain.subscribe(topic, qos=1)
    mqtt().publish(topic, b"flagged", qos=1, retain=True)
    assert rap.expect().retain is True  # [MQTT-3.3.1-13]
    assert plain.expect().retain is False  # [MQTT-3.3.1-12]
