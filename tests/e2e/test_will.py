"""Will messages end to end: abnormal close, clean DISCONNECT, retain, v5 will delay."""

from __future__ import annotations

import time

import pytest

from mqttmesh.protocol.packets import ConnAck
from paho.mqtt.packettypes import PacketTypes

from tests.helpers import RawClient
from tests.helpers.clients import props
from tests.helpers.raw import connect_bytes


def test_will_published_on_abnormal_close(mqtt, version, topic):
    # [MQTT-3.1.2-8] network connection closed without DISCONNECT: the will is published
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    dying = mqtt(will={"topic": topic, "payload": b"bye", "qos": 1})
    dying.drop()
    msg = sub.expect()
    assert (msg.topic, msg.payload, msg.qos) == (topic, b"bye", 1)


def test_will_published_when_raw_socket_closes(node, mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=0)
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"raw-will-{version}-{topic}", version=version,
                               will=(topic, b"raw bye", 0, False)))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
    assert sub.expect().payload == b"raw bye"


def test_no_will_on_clean_disconnect(mqtt, version, topic):
    # [MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT discards the will
    sub = mqtt()
    sub.subscribe([(topic, 1), (topic + "/sentinel", 1)])
    leaving = mqtt(will={"topic": topic, "payload": b"should not", "qos": 1})
    leaving.disconnect()
    mqtt().publish(topic + "/sentinel", b"end", qos=1)
    assert sub.expect().topic == topic + "/sentinel"
    sub.expect_none(0.2)


def test_retained_will(mqtt, version, topic):
    # [MQTT-3.1.2-17] will retain = 1: published as a retained message
    dying = mqtt(will={"topic": topic, "payload": b"last words", "qos": 1, "retain": True})
    watcher = mqtt()
    watcher.subscribe(topic, qos=1)
    dying.drop()
    assert watcher.expect().payload == b"last words"
    late = mqtt()
    late.subscribe(topic, qos=1)
    msg = late.expect()
    assert msg.payload == b"last words" and msg.retain


v5_only = pytest.mark.parametrize("version", [5], ids=["v5"])


@v5_only
def test_v5_will_delay(mqtt, version, topic):
    # [MQTT-3.1.3-9] the will is published after Will Delay Interval, not at disconnect
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    will_props = props(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
    dying = mqtt(
        will={"topic": topic, "payload": b"delayed", "qos": 1, "properties": will_props},
        clean=True, session_expiry=30,
    )
    dropped_at = time.monotonic()
    dying.drop()
    msg = sub.expect(timeout=6)
    assert msg.payload == b"delayed"
    assert msg.at - dropped_at >= 1.5, "will sent before its delay"


@v5_only
def test_v5_will_cancelled_by_reconnect_within_delay(mqtt, version, topic):
    # [MQTT-3.1.3-9] reconnecting before the delay elapses: no will
    sub = mqtt()
    sub.subscribe([(topic, 1), (topic + "/sentinel", 1)])
    client_id = f"willdelay-{topic}"
    will_props = props(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
    first = mqtt(client_id=client_id, session_expiry=30,
                 will={"topic": topic, "payload": b"no", "qos": 1, "properties": will_props})
    first.drop()
    second = mqtt(client_id=client_id, clean=False, session_expiry=30)
    assert second.session_present
    # wait past the delay: the will must not come (this wait is the behaviour under test)
    time.sleep(2.5)
    mqtt().publish(topic + "/sentinel", b"end", qos=1)
    assert sub.expect(timeout=3).topic == topic + "/sentinel"


@v5_only
def test_v5_will_at_session_end_when_expiry_shorter(mqtt, version, topic):
    # [MQTT-3.1.3-9] published at the earlier of will delay and session expiry
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    will_props = props(PacketTypes.WILLMESSAGE, WillDelayInterval=60)
    dying = mqtt(session_expiry=1,
                 will={"topic": topic, "payload": b"expired", "qos": 1, "properties": will_props})
    dying.drop()
    assert sub.expect(timeout=5).payload == b"expired"


@v5_only
def test_v5_disconnect_with_will_message(mqtt, version, topic):
    # DISCONNECT reason 0x04 "Disconnect with Will Message": the will is published
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    leaving = mqtt(will={"topic": topic, "payload": b"on purpose", "qos": 1})
    leaving.disconnect(reason_code=0x04)
    assert sub.expect().payload == b"on purpose"


@v5_only
def test_will_properties_passed_through(mqtt, version, topic):
    sub = mqtt()
    sub.subscribe(topic, qos=1)
    will_props = props(PacketTypes.WILLMESSAGE, ContentType="text/plain", UserProperty=[("k", "v")])
    dying = mqtt(will={"topic": topic, "payload": b"p", "qos": 1, "properties": will_props})
    dying.drop()
    msg = sub.expect()
    assert msg.prop("ContentType") == "text/plain"
    assert ("k", "v") in (msg.prop("UserProperty") or [])
