"""Smoke tests of the codec: a handful of packets per version, chunked feeding, limits."""

from __future__ import annotations

import pytest

from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol import (
    NO_PROPERTIES, ConnAck, Connect, Decoder, Disconnect, PingReq, Properties, PubAck, Publish,
    Subscribe, Subscription, encode, encode_properties, encode_publish,
)


def _connect(v: int) -> Connect:
    return Connect("cid", v, "MQIsdp" if v == 3 else "MQTT")


@pytest.mark.parametrize("v", [3, 4, 5])
def test_stream_byte_by_byte(v: int) -> None:
    packets = [
        _connect(v),
        Publish("a/b", b"x" * 300, 1, packet_id=7),
        Subscribe(1, (Subscription("a/#", 2),)),
        PubAck(7),
        PingReq(),
        Disconnect(),
    ]
    stream = b"".join(encode(p, v) for p in packets)
    d = Decoder()
    got = []
    for i in range(len(stream)):
        got.extend(d.feed(stream[i:i + 1]))
    assert got == packets
    assert d.protocol_version == v


def test_encode_publish_matches_encode() -> None:
    props = Properties(message_expiry_interval=5, user_properties=(("k", "v"),))
    for v in (4, 5):
        p = Publish("t/1", b"payload", 1, True, False, 9, props if v == 5 else NO_PROPERTIES)
        pre = encode_properties(p.properties, 3) if v == 5 else b""
        assert encode_publish(b"t/1", b"payload", 1, True, False, 9, pre, v) == encode(p, v)


def test_too_large_raises_before_body() -> None:
    d = Decoder(max_packet_size=100)
    d.feed(encode(_connect(4), 4))
    with pytest.raises(RemoteProtocolError) as info:
        d.feed(b"\x30\xff\xff\x03")  # announces ~65k, nothing of the body yet
    assert info.value.reason_code == 0x95


def test_client_role_decodes_connack() -> None:
    d = Decoder("client", protocol_version=5)
    assert d.feed(encode(ConnAck(True, 0), 5)) == [ConnAck(True, 0)]
