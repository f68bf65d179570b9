"""Encoders for each MQTT control packet, and the hot-path PUBLISH encoder.

`encode_packet` validates what it is given and raises `LocalProtocolError`; `encode_publish`
trusts its arguments (the broker has validated the message once, at PUBLISH time) and only
concatenates bytes.
"""

from __future__ import annotations

from mqttmesh.errors import LocalProtocolError
from mqttmesh.protocol._props import WILL, encode_properties
from mqttmesh.protocol._wire import enc_bin, enc_str, enc_vbi
from mqttmesh.protocol.packets import (
    Auth, ConnAck, Connect, Disconnect, Packet, PingReq, PingResp, PubAck, PubComp, Publish,
    PubRec, PubRel, SubAck, Subscribe, UnsubAck, Unsubscribe,
)
from mqttmesh.protocol.properties import NO_PROPERTIES
from mqttmesh.protocol.reason_codes import connack_return_code

__all__ = ["encode_packet", "encode_publish"]

_PROTOCOL_NAME = {3: b"\x00\x06MQIsdp", 4: b"\x00\x04MQTT", 5: b"\x00\x04MQTT"}
_MAX_REMAINING = 268_435_455
_VBI1 = [bytes((i,)) for i in range(128)]


def encode_publish(
    topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool, packet_id: int | None,
    properties: bytes, protocol_version: int,
) -> bytes:
    """Encode a PUBLISH from pre-encoded parts, without validation (hot path).

    Args:
        topic: the topic name, UTF-8 encoded.
        payload: the application message.
        qos: 0, 1 or 2.
        retain: RETAIN flag.
        dup: DUP flag.
        packet_id: required when qos > 0, ignored otherwise.
        properties: for MQTT 5 an encoded property block including its length prefix
            (`encode_properties`), b"" meaning no properties; ignored for 3 / 4.
        protocol_version: 3, 4 or 5.
    """
    tlen = len(topic)
    b0 = 0x30 | (qos << 1) | (8 if dup else 0) | (1 if retain else 0)
    if qos:
        var = bytes((tlen >> 8, tlen & 0xFF)) + topic + packet_id.to_bytes(2, "big")  # type: ignore[union-attr]
    else:
        var = bytes((tlen >> 8, tlen & 0xFF)) + topic
    if protocol_version == 5:
        var += properties or b"\x00"
    rl = len(var) + len(payload)
    if rl < 128:
        return b"".join((bytes((b0, rl)), var, payload))
    return b"".join((bytes((b0,)), enc_vbi(rl), var, payload))


def _frame(b0: int, body: bytes) -> bytes:
    n = len(body)
    if n > _MAX_REMAINING:
        raise LocalProtocolError(f"packet too large: remaining length {n}")
    return bytes((b0,)) + (_VBI1[n] if n < 128 else enc_vbi(n)) + body


def _u16(v: int, what: str = "packet identifier") -> bytes:
    if not 0 < v < 65536:
        raise LocalProtocolError(f"{what} {v} out of range")
    return v.to_bytes(2, "big")


def _connect(p: Connect, v: int) -> bytes:
    flags = 0x02 if p.clean_start else 0
    parts = [_PROTOCOL_NAME[v], bytes((v,))]
    if p.will is not None:
        if p.will.qos not in (0, 1, 2):
            raise LocalProtocolError(f"will QoS {p.will.qos}")
        flags |= 0x04 | (p.will.qos << 3) | (0x20 if p.will.retain else 0)
    if p.username is not None:
        flags |= 0x80
    if p.password is not None:
        if v < 5 and p.username is None:
            raise LocalProtocolError("password without user name")  # [MQTT-3.1.2-22]
        flags |= 0x40
    if not 0 <= p.keep_alive < 65536:
        raise LocalProtocolError(f"keep alive {p.keep_alive} out of range")
    parts.append(bytes((flags,)) + p.keep_alive.to_bytes(2, "big"))
    if v == 5:
        parts.append(encode_properties(p.properties, 1))
    parts.append(enc_str(p.client_id))
    if p.will is not None:
        if v == 5:
            parts.append(encode_properties(p.will.properties, WILL))
        parts.append(enc_str(p.will.topic))
        parts.append(enc_bin(p.will.payload))
    if p.username is not None:
        parts.append(enc_str(p.username))
    if p.password is not None:
        parts.append(enc_bin(p.password))
    return _frame(0x10, b"".join(parts))


def _connack(p: ConnAck, v: int) -> bytes:
    code = p.reason_code if v == 5 else connack_return_code(p.reason_code)
    body = bytes((1 if p.session_present else 0, code))
    if v == 5:
        body += encode_properties(p.properties, 2)
    return _frame(0x20, body)


def _publish(p: Publish, v: int) -> bytes:
    if p.qos not in (0, 1, 2):
        raise LocalProtocolError(f"PUBLISH QoS {p.qos}")
    if p.qos and p.packet_id is None:
        raise LocalProtocolError("QoS > 0 PUBLISH needs a packet identifier")  # [MQTT-2.2.1-2]
    if p.qos:
        _u16(p.packet_id)  # type: ignore[arg-type]
    if p.dup and not p.qos:
        raise LocalProtocolError("DUP on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
    if "+" in p.topic or "#" in p.topic:
        raise LocalProtocolError("wildcard in topic name")  # [MQTT-3.3.2-2]
    if "\x00" in p.topic:
        raise LocalProtocolError("U+0000 in topic name")  # [MQTT-4.7.3-2]
    topic = p.topic.encode("utf-8")
    if len(topic) > 65535:
        raise LocalProtocolError("topic name too long")
    if not topic and (v < 5 or p.properties.topic_alias is None):
        raise LocalProtocolError("empty topic name")  # [MQTT-4.7.3-1]
    props = encode_properties(p.properties, 3) if v == 5 else b""
    return encode_publish(topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, props, v)


def _ack(p: PubAck | PubRec | PubRel | PubComp, v: int) -> bytes:
    b0 = (p.TYPE << 4) | (2 if p.TYPE == 6 else 0)
    body = _u16(p.packet_id)
    if v == 5 and (p.reason_code or p.properties is not NO_PROPERTIES):
        body += bytes((p.reason_code,))
        if p.properties is not NO_PROPERTIES:
            body += encode_properties(p.properties, p.TYPE)
    return _frame(b0, body)


def _subscribe(p: Subscribe, v: int) -> bytes:
    if not p.subscriptions:
        raise LocalProtocolError("SUBSCRIBE needs at least one topic filter")  # [MQTT-3.8.3-3]
    parts = [_u16(p.packet_id)]
    if v == 5:
        parts.append(encode_properties(p.properties, 8))
    for s in p.subscriptions:
        if s.qos not in (0, 1, 2) or s.retain_handling not in (0, 1, 2):
            raise LocalProtocolError(f"invalid subscription options {s}")
        opts = s.qos
        if v == 5:
            opts |= (4 if s.no_local else 0) | (8 if s.retain_as_published else 0)
            opts |= s.retain_handling << 4
        parts.append(enc_str(s.topic_filter) + bytes((opts,)))
    return _frame(0x82, b"".join(parts))


def _suback(p: SubAck, v: int) -> bytes:
    codes = p.reason_codes if v == 5 else tuple(c if c < 3 else 0x80 for c in p.reason_codes)
    body = _u16(p.packet_id)
    if v == 5:
        body += encode_properties(p.properties, 9)
    return _frame(0x90, body + bytes(codes))


def _unsubscribe(p: Unsubscribe, v: int) -> bytes:
    if not p.topic_filters:
        raise LocalProtocolError("UNSUBSCRIBE needs at least one topic filter")  # [MQTT-3.10.3-2]
    parts = [_u16(p.packet_id)]
    if v == 5:
        parts.append(encode_properties(p.properties, 10))
    parts.extend(enc_str(f) for f in p.topic_filters)
    return _frame(0xA2, b"".join(parts))


def _unsuback(p: UnsubAck, v: int) -> bytes:
    body = _u16(p.packet_id)
    if v == 5:
        body += encode_properties(p.properties, 11) + bytes(p.reason_codes)
    return _frame(0xB0, body)


def _reason_props(p: Disconnect | Auth, v: int) -> bytes:
    b0 = p.TYPE << 4
    if v < 5:
        if p.TYPE == 15:
            raise LocalProtocolError("AUTH needs MQTT 5")
        return bytes((b0, 0))
    if p.reason_code == 0 and p.properties is NO_PROPERTIES:
        return bytes((b0, 0))
    return _frame(b0, bytes((p.reason_code,)) + encode_properties(p.properties, p.TYPE))


_ENCODERS = {
    Connect: _connect, ConnAck: _connack, Publish: _publish, PubAck: _ack, PubRec: _ack,
    PubRel: _ack, PubComp: _ack, Subscribe: _subscribe, SubAck: _suback,
    Unsubscribe: _unsubscribe, UnsubAck: _unsuback, Disconnect: _reason_props,
    Auth: _reason_props,
    PingReq: lambda p, v: b"\xc0\x00", PingResp: lambda p, v: b"\xd0\x00",
}


def encode_packet(packet: Packet, protocol_version: int) -> bytes:
    """Encode any packet for ``protocol_version`` (3, 4, 5); raise LocalProtocolError if invalid."""
    if protocol_version not in (3, 4, 5):
        raise LocalProtocolError(f"unsupported protocol version {protocol_version}")
    fn = _ENCODERS.get(type(packet))
    if fn is None:
        raise LocalProtocolError(f"not a packet: {packet!r}")
    try:
        return fn(packet, protocol_version)  # type: ignore[no-any-return, operator]
    except LocalProtocolError:
        raise
    except (ValueError, OverflowError, TypeError, AttributeError) as exc:
        raise LocalProtocolError(f"cannot encode {type(packet).__name__}: {exc}") from exc
