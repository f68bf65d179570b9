"""PUBLISH / SUBSCRIBE end to end: QoS 0/1/2 in every combination, fan-out, ordering."""

from __future__ import annotations

import pytest



@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_qos_matrix(mqtt, version, topic, pub_qos, sub_qos):
    # [MQTT-3.8.4-6] delivered at the minimum of the published and the granted QoS
    sub = mqtt()
    assert sub.subscribe(topic, qos=sub_qos) == [sub_qos]
    pub = mqtt()
    pub.publish(topic, b"payload-%d-%d" % (pub_qos, sub_qos), qos=pub_qos)
    msg = sub.expect()
    assert msg.topic == topic
    assert msg.payload == b"payload-%d-%d" % (pub_qos, sub_qos)
    assert msg.qos == min(pub_qos, sub_qos)
    assert msg.retain is False
    sub.expect_none(0.2)  # exactly once


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_order_is_kept(mqtt, version, topic, qos):
    # [MQTT-4.6.0-5] ordered topic: messages arrive in publish order
    sub = mqtt()
    sub.subscribe(topic, qos=qos)
    pub = mqtt()
    for i in range(50):
        pub.publish(topic, str(i).encode(), qos=qos, wait=False)
    got = [m.payload for m in sub.expect_many(50)]
    assert got == [str(i).encode() for i in range(50)]


def test_fan_out_to_every_subscriber(mqtt, version, topic):
    subs = [mqtt() for _ in range(4)]
    for sub in subs:
        sub.subscribe(topic, qos=1)
    mqtt().publish(topic, b"to all", qos=1)
    for sub in subs:
        assert sub.expect().payload == b"to all"


def test_publisher_receives_own_message(mqtt, version, topic):
    # Without No Local the publisher is a subscriber like any other.
    client = mqtt()
    client.subscribe(topic, qos=1)
    client.publish(topic, b"echo", qos=1)
    assert client.expect().payload == b"echo"


def test_unsubscribe_stops_delivery(mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    pub = mqtt()
    pub.publish(topic, b"one", qos=1)
    assert sub.expect().payload == b"one"
    sub.unsubscribe(topic)
    pub.publish(topic, b"two", qos=1)
    sub.expect_none(0.3)


def test_resubscribe_replaces_qos(mqtt, version, topic):
    # [MQTT-3.8.4-3] a repeated filter replaces the subscription (its QoS)
    sub = mqtt()
    sub.subscribe(topic, qos=2)
    sub.subscribe(topic, qos=0)
    mqtt().publish(topic, b"x", qos=2)
    msg = sub.expect()
    assert msg.qos == 0
    sub.expect_none(0.2)


def test_large_payload(mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    payload = bytes(range(256)) * 1024  # 256 KB
    mqtt().publish(topic, payload, qos=1)
    assert sub.expect().payload == payload


def test_empty_payload(mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    mqtt().publish(topic, b"", qos=1)
    assert sub.expect().payload == b""


def test_many_messages_qos2_exactly_once(mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=2)
    pub = mqtt()
    infos = [pub.publish(topic, str(i).encode(), qos=2, wait=False) for i in range(100)]
    for info in infos:
        info.wait_for_publish(5)
    got = sub.expect_many(100)
    assert sorted(int(m.payload) for m in got) == list(range(100))
    sub.expect_none(0.2)


def test_unrelated_topic_not_delivered(mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic + "/a", qos=1)
    pub = mqtt()
    pub.publish(topic + "/b", b"no", qos=1)
    pub.publish(topic + "/a", b"yes", qos=1)
    assert sub.expect().payload == b"yes"
    sub.expect_none(0.2)


def test_multiple_filters_in_one_subscribe(mqtt, version, topic):
    sub = mqtt()
    codes = sub.subscribe([(topic + "/q0", 0), (topic + "/q1", 1), (topic + "/q2", 2)])
    assert codes == [0, 1, 2]
    pub = mqtt()
    for q in range(3):
        pub.publish(f"{topic}/q{q}", b"m", qos=2)
    got = {m.topic: m.qos for m in sub.expect_many(3)}
    assert got == {f"{topic}/q{q}": q for q in range(3)}
