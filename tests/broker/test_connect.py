"""CONNECT / CONNACK, client ids, authentication, keep alive, idle timeout, protocol errors."""

from __future__ import annotations

from mqttmesh.protocol.packets import (
    Auth, ConnAck, Connect, Disconnect, PingReq, PingResp,
)
from mqttmesh.protocol.properties import Properties

from .conftest import tick


def test_connect_v311(client) -> None:
    c = client(4)
    ack = c.connect("a")
    assert ack == ConnAck(False, 0)
    assert c.channel.state.name == "CONNECTED"


def test_connect_v31(client) -> None:
    c = client(3)
    ack = c.connect("a")
    assert ack.reason_code == 0 and not ack.session_present


def test_connect_v5_connack_properties(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    broker = make_broker(max_qos_allowed=1, max_packet_size=4096, server_keepalive=30)
    c = BrokerClient(broker, clock, 5)
    ack = c.connect("a")
    p = ack.properties
    assert ack.reason_code == 0
    assert p.receive_maximum == 100  # max_awaiting_rel
    assert p.maximum_qos == 1
    assert p.retain_available == 1
    assert p.maximum_packet_size == 4096
    assert p.topic_alias_maximum == 65535
    assert p.wildcard_subscription_available == 1
    assert p.shared_subscription_available == 1
    assert p.subscription_identifier_available == 1
    assert p.server_keep_alive == 30  # [MQTT-3.2.2-21]
    assert p.assigned_client_identifier is None


def test_v5_empty_client_id_is_assigned(client, broker) -> None:
    c = client(5)
    ack = c.connect("")
    assigned = ack.properties.assigned_client_identifier  # [MQTT-3.1.3-6] [MQTT-3.2.2-16]
    assert assigned
    assert broker.sessions.get(assigned) is not None


def test_v311_empty_client_id_needs_clean_session(client) -> None:
    c = client(4)
    assert c.connect("", clean_start=True).reason_code == 0
    c2 = client(4)
    assert c2.connect("", clean_start=False).reason_code == 0x02  # [MQTT-3.1.3-8]
    assert c2.closed


def test_client_id_too_long(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    broker = make_broker(max_clientid_len=5)
    c = BrokerClient(broker, clock, 5)
    assert c.connect("abcdef").reason_code == 0x85
    assert c.closed


def test_authenticate_hook_refuses(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    seen = []

    def auth(connect: Connect) -> int:
        seen.append(connect.username)
        return 0 if connect.password == b"ok" else 0x86

    broker = make_broker(authenticate=auth)
    assert BrokerClient(broker, clock, 5).connect("a", username="u", password=b"no").reason_code == 0x86
    v4 = BrokerClient(broker, clock, 4)
    assert v4.connect("a", username="u", password=b"no").reason_code == 0x04  # bad user/pass
    assert v4.closed
    assert BrokerClient(broker, clock, 4).connect("a", username="u", password=b"ok").reason_code == 0
    assert seen == ["u", "u", "u"]


def test_enhanced_auth_not_supported(client) -> None:
    c = client(5)
    ack = c.connect("a", properties=Properties(authentication_method="SCRAM-SHA-1"))
    assert ack.reason_code == 0x8C and c.closed


def test_auth_packet_after_connect_disconnects(client) -> None:
    c = client(5)
    c.connect("a")
    c.send(Auth(0x18))
    assert c.take(Disconnect).reason_code == 0x8C
    assert c.closed


def test_pingreq(client) -> None:
    c = client(4)
    c.connect("a")
    c.send(PingReq())
    assert c.received() == [PingResp()]  # [MQTT-3.12.4-1]


def test_idle_timeout_without_connect(broker, clock, client) -> None:
    c = client(4)
    tick(broker, clock, 14)
    assert not c.closed
    tick(broker, clock, 2)
    assert c.closed
    assert broker.statistics().channels == 0


def test_keepalive_timeout_closes_and_publishes_will(broker, clock, client) -> None:
    from mqttmesh.protocol.packets import Will

    sub = client(4)
    sub.connect("sub", keep_alive=0)
    sub.subscribe("will/t")
    c = client(5)
    c.connect("a", keep_alive=10, will=Will("will/t", b"gone"))
    tick(broker, clock, 14)  # 1.4 x keep alive: still alive
    assert not c.closed
    c.send(PingReq())
    tick(broker, clock, 14)
    assert not c.closed
    tick(broker, clock, 2)  # [MQTT-3.1.2-24] 1.5 x keep alive of silence
    assert c.closed
    assert c.take(Disconnect).reason_code == 0x8D
    assert [p.payload for p in sub.publishes()] == [b"gone"]


def test_keepalive_zero_never_times_out(broker, clock, client) -> None:
    c = client(4)
    c.connect("a", keep_alive=0)
    tick(broker, clock, 1000)
    assert not c.closed


def test_second_connect_is_protocol_error(client) -> None:
    c = client(5)
    c.connect("a")
    c.send(Connect("a", 5))
    assert c.closed  # [MQTT-3.1.0-2]


def test_malformed_bytes_v5_disconnect(client) -> None:
    c = client(5)
    c.connect("a")
    c.send_raw(b"\x30\x02\x00")  # PUBLISH with a truncated topic: malformed
    c.send_raw(b"\x00")
    assert c.closed
    assert isinstance(c.received()[-1], Disconnect)


def test_malformed_bytes_v4_close(client) -> None:
    c = client(4)
    c.connect("a")
    c.send_raw(b"\xf0\x00")  # reserved packet type
    assert c.closed
    assert c.received() == []


def test_publish_before_connect_closes(client) -> None:
    c = client(4)
    c.send_raw(b"\x30\x05\x00\x01a\x00\x00")
    assert c.closed


def test_qos_above_maximum_disconnects_v5(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    broker = make_broker(max_qos_allowed=1)
    c = BrokerClient(broker, clock, 5)
    c.connect("a")
    c.publish("t", b"x", qos=2)
    assert c.take(Disconnect).reason_code == 0x9B  # [MQTT-3.2.2-11]


def test_retain_not_available_disconnects_v5(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    broker = make_broker(retain_available=False)
    c = BrokerClient(broker, clock, 5)
    assert c.connect("a").properties.retain_available == 0
    c.publish("t", b"x", retain=True)
    assert c.take(Disconnect).reason_code == 0x9A  # [MQTT-3.2.2-14]


def test_statistics_counts(broker, client) -> None:
    a = client(4)
    a.connect("a")
    a.subscribe("t")
    a.publish("t", b"x")
    stats = broker.statistics()
    assert stats.connections == 1 and stats.sessions == 1 and stats.subscriptions == 1
    assert stats.messages_received == 1 and stats.messages_sent == 1
    assert stats.bytes_received > 0 and stats.bytes_sent > 0
    assert [p.topic for p in a.publishes()] == ["t"]
    assert stats.messages_received_qos == (1, 0, 0) and stats.messages_sent_qos == (1, 0, 0)


def test_statistics_counts_per_qos(broker, client) -> None:
    a = client(4)
    a.connect("a")
    a.subscribe("t", qos=2)  # gets each message at the QoS it was published with
    b = client(5)
    b.connect("b")
    b.subscribe("t", qos=0)  # gets everything at QoS 0 (the dispatcher's fast path)
    for qos, times in ((0, 1), (1, 2), (2, 3)):
        for _ in range(times):
            a.publish("t", b"x", qos=qos)
    stats = broker.statistics()
    assert stats.messages_received_qos == (1, 2, 3) and stats.messages_received == 6
    assert stats.messages_sent_qos == (1 + 6, 2, 3) and stats.messages_sent == 12
    assert sorted(p.qos for p in a.publishes()) == [0, 1, 1, 2, 2, 2]
    assert [p.qos for p in b.publishes()] == [0] * 6


def test_shutdown_sends_0x8b(broker, client, clock) -> None:
    a = client(5)
    a.connect("a")
    b = client(4)
    b.connect("b")
    broker.shutdown(clock.now)
    assert a.take(Disconnect).reason_code == 0x8B
    assert a.closed and b.closed
    assert broker.statistics().connections == 0


def test_wildcard_subscription_disabled(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    broker = make_broker(wildcard_subscription=False, shared_subscription=False)
    c = BrokerClient(broker, clock, 5)
    c.connect("a")
    ack = c.subscribe("a/+", "a/b", "$share/g/a")
    assert ack.reason_codes == (0xA2, 0, 0x9E)


def test_publish_topic_with_wildcard_is_refused(client) -> None:
    c = client(5)
    c.connect("a")
    c.send_raw(b"\x30\x07\x00\x03a/+\x00x")  # the client-side encoder refuses to make it
    assert c.take(Disconnect).reason_code == 0x90  # [MQTT-3.3.2-2]
    assert c.closed


def test_unsupported_protocol_level_connack_0x01(client) -> None:
    c = client(4)
    c.send_raw(b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00")  # level 6
    assert c.received() == [ConnAck(False, 0x01)]  # [MQTT-3.1.2-2]
    assert c.closed


def test_v5_malformed_connect_gets_connack_reason(client) -> None:
    c = client(5)
    # CONNECT v5 with the reserved flag set: malformed -> CONNACK 0x81 then close
    c.send_raw(b"\x10\x0d\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x00")
    [ack] = c.received()
    assert isinstance(ack, ConnAck) and ack.reason_code == 0x81  # [MQTT-3.1.2-3]
    assert c.closed


def test_tick_returns_next_deadline(broker, clock, client) -> None:
    assert broker.tick(clock.now) is None
    c = client(4)
    assert broker.tick(clock.now) == clock.now + 15  # connect (idle) timeout
    c.connect("a", keep_alive=20)
    clock.advance(16)
    assert broker.tick(clock.now) == clock.now - 16 + 30  # keep alive x 1.5 governs now
    assert not c.closed


def test_valid_packets_before_a_malformed_one_are_acted_on(client) -> None:
    from mqttmesh.protocol import encode

    for version in (3, 4, 5):
        c = client(version)
        c.send_raw(encode(Connect("ok", version, "MQTT" if version > 3 else "MQIsdp"), version)
                   + b"\x30\xff\xff\xff\xff\x01")  # remaining length of 5 bytes [MQTT-1.5.5-1]
        packets = c.received()
        assert packets[0] == ConnAck(False, 0) or packets[0].reason_code == 0
        if version == 5:
            assert packets[1].reason_code == 0x81
        assert c.closed
