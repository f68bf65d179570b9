"""Sessions end to end: clean session / clean start, persistence, queued messages, expiry."""

from __future__ import annotations

import time

import pytest

v5_only = pytest.mark.parametrize("version", [5], ids=["v5"])


def _persistent(version: int) -> dict:
    """Connect options for a session that outlives the connection."""
    return {"clean": False, "session_expiry": 300} if version == 5 else {"clean": False}


def test_clean_session_has_no_state(mqtt, version, topic):
    client_id = f"clean-{topic}"
    first = mqtt(client_id=client_id)
    first.subscribe(topic, qos=1)
    first.disconnect()
    second = mqtt(client_id=client_id)
    assert second.session_present is False  # [MQTT-3.2.2-1]
    mqtt().publish(topic, b"x", qos=1)
    second.expect_none(0.3)  # the subscription went with the session


def test_persistent_session_present_and_subscriptions_kept(mqtt, version, topic):
    client_id = f"persist-{topic}"
    first = mqtt(client_id=client_id, **_persistent(version))
    assert first.session_present is False
    first.subscribe(topic, qos=1)
    first.disconnect()
    second = mqtt(client_id=client_id, **_persistent(version))
    assert second.session_present is True  # [MQTT-3.2.2-2]
    mqtt().publish(topic, b"still subscribed", qos=1)
    assert second.expect().payload == b"still subscribed"


def test_queued_messages_delivered_on_reconnect(mqtt, version, topic):
    # [MQTT-3.1.2-5] QoS 1/2 messages for a disconnected persistent session are stored
    client_id = f"queue-{topic}"
    first = mqtt(client_id=client_id, **_persistent(version))
    first.subscribe(topic, qos=2)
    first.disconnect()
    pub = mqtt()
    for i in range(5):
        pub.publish(topic, b"q1-%d" % i, qos=1)
    for i in range(5):
        pub.publish(topic, b"q2-%d" % i, qos=2)
    second = mqtt(client_id=client_id, **_persistent(version))
    assert second.session_present
    got = [m.payload for m in second.expect_many(10)]
    assert got == [b"q1-%d" % i for i in range(5)] + [b"q2-%d" % i for i in range(5)]


def test_clean_start_discards_persistent_session(mqtt, version, topic):
    client_id = f"discard-{topic}"
    first = mqtt(client_id=client_id, **_persistent(version))
    first.subscribe(topic, qos=1)
    first.disconnect()
    mqtt().publish(topic, b"lost", qos=1)
    opts = {"clean": True, "session_expiry": 300} if version == 5 else {"clean": True}
    second = mqtt(client_id=client_id, **opts)
    assert second.session_present is False  # [MQTT-3.1.2-4]
    second.expect_none(0.3)


@v5_only
def test_v5_session_expiry_elapses(mqtt, version, topic):
    # [MQTT-3.1.2-23] the session is discarded once Session Expiry Interval has passed
    client_id = f"expiring-{topic}"
    first = mqtt(client_id=client_id, clean=False, session_expiry=1)
    first.subscribe(topic, qos=1)
    first.disconnect()
    time.sleep(2.2)  # the expiry is the behaviour under test
    second = mqtt(client_id=client_id, clean=False, session_expiry=1)
    assert second.session_present is False


@v5_only
def test_v5_session_expiry_zero_ends_at_disconnect(mqtt, version, topic):
    client_id = f"zero-expiry-{topic}"
    first = mqtt(client_id=client_id, clean=False, session_expiry=0)
    first.subscribe(topic, qos=1)
    first.disconnect()
    second = mqtt(client_id=client_id, clean=False, session_expiry=0)
    assert second.session_present is False


@v5_only
def test_v5_disconnect_can_shorten_session_expiry(mqtt, version, topic):
    # DISCONNECT may change Session Expiry Interval (to 0 here): the session ends
    from paho.mqtt.packettypes import PacketTypes

    from tests.helpers.clients import props

    client_id = f"shorten-{topic}"
    first = mqtt(client_id=client_id, clean=False, session_expiry=300)
    first.subscribe(topic, qos=1)
    first.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    second = mqtt(client_id=client_id, clean=False, session_expiry=300)
    assert second.session_present is False


def test_unacked_qos1_redelivered_after_reconnect(node, mqtt, version, topic):
    # [MQTT-4.4.0-1] unacknowledged PUBLISH packets are resent (DUP=1) on reconnect
    from mqttmesh.protocol.packets import ConnAck, Publish
    from tests.helpers import RawClient
    from tests.helpers.raw import connect_bytes

    client_id = f"unacked-{topic}"
    sub = mqtt(client_id=client_id, **_persistent(version))
    sub.subscribe(topic, qos=1)
    sub.disconnect()
    mqtt().publish(topic, b"needs ack", qos=1)
    props5 = b"\x11\x00\x00\x01\x2c" if version == 5 else b""  # session expiry 300
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(client_id, version=version, clean=False, properties=props5))
        packets = raw.read_packets(2)
        assert isinstance(packets[0], ConnAck) and packets[0].session_present
        assert isinstance(packets[1], Publish) and packets[1].payload == b"needs ack"
        # close without PUBACK
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(client_id, version=version, clean=False, properties=props5))
        packets = raw.read_packets(2)
        assert isinstance(packets[1], Publish) and packets[1].payload == b"needs ack"
        assert packets[1].dup is True  # [MQTT-3.3.1-1]
        raw.send(b"\x40\x02" + packets[1].packet_id.to_bytes(2, "big"))
