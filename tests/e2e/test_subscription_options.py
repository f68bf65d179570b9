"""MQTT 5 subscription options end to end: No Local, Retain As Published, QoS, user data.

These options do not exist in 3.1.1; the 3.1.1 run checks the 3.1.1 behaviour instead
(publisher gets its own message; live messages lose RETAIN).
"""

from __future__ import annotations


def test_no_local(mqtt, version, topic):
    client = mqtt()
    if version == 5:
        # [MQTT-3.8.3-3] No Local: not sent back to the connection that published it
        client.subscribe(topic, qos=1, no_local=True)
        other = mqtt()
        other.subscribe(topic, qos=1)
        client.publish(topic, b"mine", qos=1)
        assert other.expect().payload == b"mine"
        client.expect_none(0.3)
        other.publish(topic, b"theirs", qos=1)
        assert client.expect().payload == b"theirs"
    else:
        client.subscribe(topic, qos=1)
        client.publish(topic, b"mine", qos=1)
        assert client.expect().payload == b"mine"


def test_retain_as_published_on_live_message(mqtt, version, topic):
    sub = mqtt()
    if version == 5:
        sub.subscribe(topic, qos=1, retain_as_published=True)
    else:
        sub.subscribe(topic, qos=1)
    mqtt().publish(topic, b"r", qos=1, retain=True)
    assert sub.expect().retain is (version == 5)


def test_user_properties_and_request_response_passed_through(mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    pub = mqtt()
    if version == 5:
        # [MQTT-3.3.2-17] [MQTT-3.3.2-18] properties forwarded unaltered
        pub.publish(topic, b"req", qos=1, ResponseTopic=topic + "/reply",
                    CorrelationData=b"\x01\x02", UserProperty=[("a", "1"), ("a", "2")],
                    ContentType="application/x", PayloadFormatIndicator=1)
        msg = sub.expect()
        assert msg.prop("ResponseTopic") == topic + "/reply"
        assert msg.prop("CorrelationData") == b"\x01\x02"
        assert msg.prop("UserProperty") == [("a", "1"), ("a", "2")]
        assert msg.prop("ContentType") == "application/x"
        assert msg.prop("PayloadFormatIndicator") == 1
    else:
        pub.publish(topic, b"req", qos=1)
        assert sub.expect().payload == b"req"


def test_granted_qos_limited_by_request(mqtt, version, topic):
    sub = mqtt()
    assert sub.subscribe(topic, qos=1) == [1]
    mqtt().publish(topic, b"q2", qos=2)
    assert sub.expect().qos == 1


def test_overlapping_subscriptions_v5_one_copy_per_subscription_or_one(mqtt, version, topic):
    # 3.1.1 and 5.0 both allow one copy at the highest QoS or one per subscription; the
    # message arrives and at the maximum QoS of the matching subscriptions when it is one copy.
    sub = mqtt()
    sub.subscribe([(topic + "/#", 0), (topic + "/x", 1)])
    mqtt().publish(topic + "/x", b"o", qos=1)
    first = sub.expect()
    assert first.payload == b"o"
    rest = sub.drain()
    assert len(rest) <= 1
