"""Decoder and encoder edge cases: limits, roles, error state, short forms, encoder checks."""

from __future__ import annotations

import time

import pytest

from mqttmesh.errors import LocalProtocolError, RemoteProtocolError
from mqttmesh.protocol import (
    NO_PROPERTIES, Auth, ConnAck, Connect, Decoder, Disconnect, PingReq, Properties, PubAck,
    PubRel, Publish, Subscribe, Subscription, Unsubscribe, Will, encode, encode_properties,
)

C4 = encode(Connect("c"), 4)
C5 = encode(Connect("c", 5), 5)


def test_max_packet_size_boundary() -> None:
    ok = encode(Publish("t", b"x" * 93), 4)  # 2 + 3 + 93 = 98 bytes... plus header
    size = len(ok)
    d = Decoder(max_packet_size=size)
    assert d.feed(C4 + ok)[1].payload == b"x" * 93  # type: ignore[union-attr]
    d = Decoder(max_packet_size=size - 1)
    d.feed(C4)
    with pytest.raises(RemoteProtocolError) as info:
        d.feed(ok[:2])  # the header alone is enough to refuse [MQTT-3.2.2-15]
    assert info.value.reason_code == 0x95


def test_oversized_connect_refused() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Decoder(max_packet_size=20).feed(b"\x10\x80\x01")
    assert info.value.reason_code == 0x95


def test_large_packet_in_many_chunks_is_linear() -> None:
    payload = b"p" * 2_000_000
    raw = encode(Publish("t", payload), 4)
    d = Decoder(protocol_version=4)
    t0 = time.perf_counter()
    got = []
    for i in range(0, len(raw), 1000):
        got.extend(d.feed(raw[i:i + 1000]))
    assert time.perf_counter() - t0 < 2.0
    assert got == [Publish("t", payload)]


def test_error_carries_preceding_packets_and_decoder_stays_dead() -> None:
    d = Decoder()
    with pytest.raises(RemoteProtocolError) as info:
        d.feed(C4 + b"\xc0\x00" + b"\x62\x02\x00\x01" + b"\x00\x00")  # reserved type 0
    assert info.value.packets == [Connect("c"), PingReq(), PubRel(1)]  # type: ignore[attr-defined]
    with pytest.raises(RemoteProtocolError):
        d.feed(b"\xc0\x00")


@pytest.mark.parametrize("raw", [C4, encode(Subscribe(1, (Subscription("a"),)), 4),
                                 encode(Unsubscribe(1, ("a",)), 4), b"\xc0\x00"])
def test_client_role_refuses_client_packets(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Decoder("client", protocol_version=4).feed(raw)
    assert info.value.reason_code == 0x82


def test_v5_ack_short_forms() -> None:
    d = Decoder(protocol_version=5)
    assert d.feed(b"\x40\x02\x00\x07") == [PubAck(7)]
    assert d.feed(b"\x40\x03\x00\x07\x10") == [PubAck(7, 0x10)]
    assert d.feed(b"\xe0\x00") == [Disconnect()]
    assert d.feed(b"\xe0\x01\x04") == [Disconnect(0x04)]
    assert d.feed(b"\xf0\x00") == [Auth()]


def test_v5_empty_topic_with_alias() -> None:
    p = Publish("", b"x", properties=Properties(topic_alias=3))
    assert Decoder(protocol_version=5).feed(encode(p, 5)) == [p]


def test_v5_server_may_send_several_subscription_identifiers() -> None:
    p = Publish("t", b"", properties=Properties(subscription_identifiers=(1, 2, 300000)))
    assert Decoder("client", protocol_version=5).feed(encode(p, 5)) == [p]
    with pytest.raises(RemoteProtocolError):  # [MQTT-3.3.4-6]
        Decoder(protocol_version=5).feed(encode(p, 5))


def test_connect_error_attributes() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Decoder().feed(bytes.fromhex("100d00044d5154540602003c000163"))  # level 6
    assert info.value.connack_code == 0x01  # type: ignore[attr-defined]
    assert info.value.protocol_version is None  # type: ignore[attr-defined]
    d = Decoder()
    with pytest.raises(RemoteProtocolError) as info:
        d.feed(encode(Connect("c", 5, properties=Properties(receive_maximum=1)), 5)
               .replace(b"\x21\x00\x01", b"\x21\x00\x00"))
    assert info.value.connack_code == 0x82  # type: ignore[attr-defined]
    assert d.protocol_version == 5


def test_many_user_properties() -> None:
    pairs = tuple((f"k{i}", "v") for i in range(50_000))
    raw = encode(Publish("t", b"", properties=Properties(user_properties=pairs)), 5)
    t0 = time.perf_counter()
    (p,) = Decoder(protocol_version=5).feed(raw)
    assert time.perf_counter() - t0 < 2.0
    assert p.properties.user_properties == pairs  # type: ignore[union-attr]


@pytest.mark.parametrize(("packet", "v"), [
    (Publish("t", qos=3, packet_id=1), 4),
    (Publish("t", qos=1), 4),
    (Publish("t", qos=1, packet_id=0), 4),
    (Publish("t", dup=True), 4),
    (Publish("a/+"), 4),
    (Publish(""), 4),
    (Publish("", properties=NO_PROPERTIES), 5),
    (Connect("c", 4, password=b"p"), 4),
    (Connect("c", 4, will=Will("t", b"", qos=3)), 4),
    (Auth(), 4),
    (Subscribe(1, ()), 4),
    (Unsubscribe(1, ()), 5),
    (PubAck(0), 4),
    (Publish("t", properties=Properties(session_expiry_interval=1)), 5),
    (Publish("t", properties=Properties(payload_format_indicator=256)), 5),
    (Connect("\ud800"), 4),
    (Connect("a\x00"), 4),
    (Publish("a\x00"), 4),
    (Publish("t", properties=Properties(user_properties=(("k", "\x00"),))), 5),
    (PingReq(), 6),
])
def test_encode_rejects(packet: object, v: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode(packet, v)  # type: ignore[arg-type]


def test_connack_v3_return_codes() -> None:
    assert encode(ConnAck(False, 0x87), 4) == b"\x20\x02\x00\x05"
    assert encode(ConnAck(False, 0x85), 4) == b"\x20\x02\x00\x02"
    assert encode(ConnAck(True, 0), 4) == b"\x20\x02\x01\x00"
    assert encode(ConnAck(False, 0x99), 4) == b"\x20\x02\x00\x03"


def test_encode_properties_prefix() -> None:
    assert encode_properties(NO_PROPERTIES, 3) == b"\x00"
    assert encode_properties(Properties(topic_alias=5), 3) == b"\x03\x23\x00\x05"
    with pytest.raises(LocalProtocolError):
        encode_properties(Properties(topic_alias=5), 4)


@pytest.mark.parametrize(("stream", "reason"), [
    (b"\x30\xff\xff\x7f", 0x82),  # a 2 MB PUBLISH before CONNECT [MQTT-3.1.0-1]
    (C4 + b"\x20\xff\xff\x7f", 0x82),  # a server-only packet
    (C4 + b"\x41\xff\xff\x7f", 0x81),  # bad flags
    (C4 + b"\xf0\xff\xff\x7f", 0x81),  # AUTH in 3.1.1
    (C4 + b"\x10\xff\xff\x7f", 0x82),  # a second CONNECT
])
def test_hopeless_packet_refused_before_its_body(stream: bytes, reason: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Decoder().feed(stream)
    assert info.value.reason_code == reason


def test_property_cache_keeps_contexts_apart() -> None:
    """A block decoded once is reused only for the same packet type and sender."""
    props = Properties(subscription_identifiers=(7,))
    raw = encode(Publish("t", b"", properties=props), 5)
    for _ in range(2):
        assert Decoder("client", protocol_version=5).feed(raw)[0].properties is not None
    with pytest.raises(RemoteProtocolError):  # same bytes, sent by a client [MQTT-3.3.4-6]
        Decoder(protocol_version=5).feed(raw)
    block = encode_properties(Properties(reason_string="x"), 4)
    assert Decoder(protocol_version=5).feed(b"\x40" + bytes((3 + len(block),)) + b"\x00\x01\x00"
                                            + block) == [PubAck(1, 0, Properties(reason_string="x"))]
    with pytest.raises(RemoteProtocolError):  # reason string is not allowed in SUBSCRIBE
        Decoder(protocol_version=5).feed(b"\x82" + bytes((5 + len(block),)) + b"\x00\x01"
                                         + block + b"\x00\x01a\x00")


def test_mqtt31_ignores_fixed_header_flags() -> None:
    """MQTT 3.1 set DUP on retried SUBSCRIBE / PUBREL...; 3.1.1 made the flags reserved."""
    d = Decoder()
    connect = encode(Connect("c", 3, "MQIsdp"), 3)
    got = d.feed(connect + b"\x8a\x06\x00\x01\x00\x01a\x01" + b"\x6a\x02\x00\x01" + b"\xc1\x00")
    assert got[1:] == [Subscribe(1, (Subscription("a", 1),)), PubRel(1), PingReq()]
    with pytest.raises(RemoteProtocolError):
        Decoder().feed(C4 + b"\x8a\x06\x00\x01\x00\x01a\x01")  # [MQTT-2.2.2-2]
