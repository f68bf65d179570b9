"""Decoders for the variable header and payload of each MQTT control packet.

Every decoder has the signature ``(b0, buf, pos, end, version, from_server) -> Packet``:
``b0`` is the first byte of the fixed header, the packet body is ``buf[pos:end]`` (``buf``
may hold further packets, so nothing reads past ``end``), ``version`` is 3, 4 or 5 and
``from_server`` tells who sent the packet. Errors raise `RemoteProtocolError` with the reason
code the spec names: 0x81 Malformed Packet, 0x82 Protocol Error, 0x84, 0x85, 0x90, 0x94.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol._props import WILL, decode_properties
from mqttmesh.protocol._wire import (
    malformed, protocol_error, read_bin, read_str, read_u8, read_u16,
)
from mqttmesh.protocol.packets import (
    Auth, ConnAck, Connect, Disconnect, Packet, PingReq, PingResp, PubAck, PubComp, Publish,
    PubRec, PubRel, SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe, Will,
)
from mqttmesh.protocol.properties import NO_PROPERTIES, Properties
from mqttmesh.protocol.reason_codes import VALID_REASON_CODES

__all__ = ["DECODERS", "decode_connect", "check_flags", "SUPPORTED"]

Decoder = Callable[[int, bytes, int, int, int, bool], Packet]

# (protocol name, protocol level) pairs this codec speaks.
SUPPORTED = {("MQIsdp", 3): 3, ("MQTT", 4): 4, ("MQTT", 5): 5}

# Fixed header flags [MQTT-2.1.3-1] (v5) / [MQTT-2.2.2-1] (3.1.1): PUBREL, SUBSCRIBE and
# UNSUBSCRIBE carry 0b0010, all others but PUBLISH 0b0000; anything else is malformed
# [MQTT-2.2.2-2].
_FLAGS = {1: 0, 2: 0, 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 9: 0, 10: 2, 11: 0, 12: 0, 13: 0, 14: 0,
          15: 0}


_new = object.__new__
_PUBLISH_SETTERS = tuple(vars(Publish)[name].__set__ for name in Publish.__slots__)


def new_publish(topic: str, payload: bytes, qos: int, retain: bool, dup: bool,
                packet_id: int | None, properties: Properties) -> Publish:
    """``Publish(...)`` without the frozen dataclass __init__ (half the cost)."""
    p = _new(Publish)
    for setter, value in zip(_PUBLISH_SETTERS, (topic, payload, qos, retain, dup, packet_id,
                                                properties)):
        setter(p, value)
    return p


def check_flags(b0: int) -> None:
    if b0 & 0x0F != _FLAGS[b0 >> 4]:
        raise malformed(f"invalid fixed header flags 0x{b0:02X}")  # [MQTT-2.2.2-2]


def _packet_id(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    pid, pos = read_u16(buf, pos, end)
    if pid == 0:
        raise malformed("packet identifier 0")  # [MQTT-2.2.1-3] [MQTT-2.3.1-1]
    return pid, pos


def _check_reason(packet_type: int, code: int) -> None:
    """An MQTT 5 reason code the packet type does not define is a Protocol Error
    [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1] [MQTT-3.7.2-1] [MQTT-3.14.2-1] [MQTT-3.15.2-1]."""
    if code not in VALID_REASON_CODES[packet_type]:
        raise protocol_error(f"reason code 0x{code:02X} is not valid in packet type {packet_type}")


def _done(pos: int, end: int) -> None:
    if pos != end:
        raise malformed("trailing bytes after the packet's fields")


def _connect_error(exc: RemoteProtocolError, level: int | None, connack: int | None) -> None:
    if not hasattr(exc, "connack_code"):
        exc.connack_code = connack  # type: ignore[attr-defined]
    exc.protocol_version = level  # type: ignore[attr-defined]


def decode_connect(b0: int, buf: bytes, pos: int, end: int) -> Connect:
    """Decode a CONNECT; the version comes from the packet itself.

    Errors carry two more attributes for the server's answer: ``protocol_version`` (the
    version to encode a CONNACK in, None if unknown: use 4) and ``connack_code`` (the CONNACK
    reason / return code to send before closing, None to close without a CONNACK).
    """
    level: int | None = None
    try:
        name, pos = read_str(buf, pos, end)
        lvl, pos = read_u8(buf, pos, end)
        version = SUPPORTED.get((name, lvl))
        if version is None:
            exc = RemoteProtocolError(f"unsupported protocol {name!r} level {lvl}", 0x84)
            # [MQTT-3.1.2-2]: unsupported level -> CONNACK 0x01 (3.1.1) / 0x84 (5.0), close.
            # [MQTT-3.1.2-1]: an unknown protocol name -> close without CONNACK.
            exc.connack_code = 0x01 if name in ("MQTT", "MQIsdp") else None  # type: ignore[attr-defined]
            raise exc
        level = version
        if version != 3:  # MQTT 3.1 reserved no flag values
            check_flags(b0)  # after the level, so that an MQTT 5 client gets its CONNACK 0x81
        return _connect_body(buf, pos, end, version, name)
    except RemoteProtocolError as exc:
        if level == 5:
            _connect_error(exc, level, exc.reason_code)
        else:
            _connect_error(exc, level, None)
        raise


def _connect_body(buf: bytes, pos: int, end: int, version: int, name: str) -> Connect:
    flags, pos = read_u8(buf, pos, end)
    if flags & 0x01:
        raise malformed("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    will_flag = flags & 0x04
    will_qos = (flags >> 3) & 3
    will_retain = bool(flags & 0x20)
    has_password = flags & 0x40
    has_username = flags & 0x80
    if not will_flag and (will_qos or will_retain):
        # [MQTT-3.1.2-11] [MQTT-3.1.2-13] (5.0); [MQTT-3.1.2-13] [MQTT-3.1.2-15] (3.1.1)
        raise malformed("will QoS / will retain set without the will flag")
    if will_qos == 3:
        raise malformed("will QoS 3")  # [MQTT-3.1.2-12] (5.0) [MQTT-3.1.2-14] (3.1.1)
    if version < 5 and has_password and not has_username:
        raise malformed("password flag without user name flag")  # [MQTT-3.1.2-22]
    keep_alive, pos = read_u16(buf, pos, end)
    props = NO_PROPERTIES
    if version == 5:
        props, pos = decode_properties(buf, pos, end, 1)
    client_id, pos = read_str(buf, pos, end)  # [MQTT-3.1.3-4]
    will = None
    if will_flag:
        will_props = NO_PROPERTIES
        if version == 5:
            will_props, pos = decode_properties(buf, pos, end, WILL)
        topic, pos = read_str(buf, pos, end)
        payload, pos = read_bin(buf, pos, end)
        if not topic or "+" in topic or "#" in topic:
            raise RemoteProtocolError("invalid will topic", 0x90)  # [MQTT-3.1.3-11]
        will = Will(topic, payload, will_qos, will_retain, will_props)
    username = password = None
    if has_username:
        username, pos = read_str(buf, pos, end)  # [MQTT-3.1.3-12]
    if has_password:
        password, pos = read_bin(buf, pos, end)
    _done(pos, end)
    clean = bool(flags & 0x02)
    if version == 3 and not 0 < len(client_id) <= 23:
        exc = RemoteProtocolError("MQTT 3.1 client identifier must be 1-23 characters", 0x85)
        exc.connack_code = 0x02  # type: ignore[attr-defined]
        raise exc
    if version == 4 and not client_id and not clean:
        exc = RemoteProtocolError("empty client identifier needs clean session", 0x85)
        # [MQTT-3.1.3-8]
        exc.connack_code = 0x02  # type: ignore[attr-defined]
        raise exc
    return Connect(client_id, version, name, clean, keep_alive, will, username, password, props)


def _connack(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
    ack, pos = read_u8(buf, pos, end)
    if ack & 0xFE:
        raise malformed("CONNACK reserved acknowledge flags set")  # [MQTT-3.2.2-1]
    code, pos = read_u8(buf, pos, end)
    props = NO_PROPERTIES
    if version == 5:
        _check_reason(2, code)
        props, pos = decode_properties(buf, pos, end, 2, True)
    _done(pos, end)
    return ConnAck(bool(ack), code, props)


def decode_publish(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
    qos = (b0 >> 1) & 3
    if qos == 3:
        raise malformed("PUBLISH QoS 3")  # [MQTT-3.3.1-4]
    dup = bool(b0 & 0x08)
    if dup and not qos:
        # [MQTT-3.3.1-2]: 5.0 -> Malformed Packet; 3.1.1 -> protocol violation, close
        raise RemoteProtocolError("DUP set on a QoS 0 PUBLISH", 0x81 if version == 5 else 0x82)
    topic, pos = read_str(buf, pos, end)  # [MQTT-3.3.2-1]
    pid = None
    if qos:
        pid, pos = _packet_id(buf, pos, end)
    props = NO_PROPERTIES
    if version == 5:
        props, pos = decode_properties(buf, pos, end, 3, fs)
        if props.subscription_identifiers and not fs:
            raise protocol_error("subscription identifier in a PUBLISH from a client")  # [MQTT-3.3.4-6]
    if not topic:
        if version < 5 or props.topic_alias is None:
            raise protocol_error("empty topic name without topic alias")  # [MQTT-4.7.3-1] §3.3.2.1
    elif "+" in topic or "#" in topic:
        raise RemoteProtocolError("wildcard in topic name", 0x90)  # [MQTT-3.3.2-2]
    return new_publish(topic, buf[pos:end], qos, b0 & 1 == 1, dup, pid, props)


def _ack(cls: Any) -> Decoder:
    ptype = cls.TYPE

    def decode(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
        pid, pos = _packet_id(buf, pos, end)
        code = 0
        props = NO_PROPERTIES
        if version == 5 and pos < end:
            code, pos = read_u8(buf, pos, end)
            _check_reason(ptype, code)
            if pos < end:
                props, pos = decode_properties(buf, pos, end, ptype, fs)
        _done(pos, end)  # 3.1.1: Remaining Length is exactly 2
        return cls(pid, code, props)  # type: ignore[no-any-return]

    return decode


def _subscribe(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
    pid, pos = _packet_id(buf, pos, end)
    props = NO_PROPERTIES
    if version == 5:
        props, pos = decode_properties(buf, pos, end, 8, fs)
    subs = []
    while pos < end:
        topic_filter, pos = read_str(buf, pos, end)
        opts, pos = read_u8(buf, pos, end)
        qos = opts & 3
        if version < 5:
            if opts & 0xFC:
                raise malformed("SUBSCRIBE requested QoS reserved bits set")  # [MQTT-3-8.3-4]
            if qos == 3:
                raise malformed("SUBSCRIBE QoS 3")  # [MQTT-3-8.3-4]
            subs.append(Subscription(topic_filter, qos))
            continue
        if opts & 0xC0:
            raise malformed("subscription options reserved bits set")  # [MQTT-3.8.3-5]
        if qos == 3:
            raise malformed("subscription QoS 3")  # §3.8.3.1
        handling = (opts >> 4) & 3
        if handling == 3:
            raise protocol_error("retain handling 3")  # §3.8.3.1
        no_local = bool(opts & 0x04)
        if no_local and topic_filter.startswith("$share/"):
            raise protocol_error("no local on a shared subscription")  # [MQTT-3.8.3-4]
        subs.append(Subscription(topic_filter, qos, no_local, bool(opts & 0x08), handling))
    if not subs:
        raise protocol_error("SUBSCRIBE without topic filters")  # [MQTT-3.8.3-2] [MQTT-3.8.3-3]
    return Subscribe(pid, tuple(subs), props)


def _suback(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
    pid, pos = _packet_id(buf, pos, end)
    props = NO_PROPERTIES
    if version == 5:
        props, pos = decode_properties(buf, pos, end, 9, fs)
    codes = tuple(buf[pos:end])
    if not codes:
        raise protocol_error("SUBACK without return codes")
    if version < 5:
        if any(c not in (0, 1, 2, 0x80) for c in codes):
            raise malformed("invalid SUBACK return code")  # 3.1.1 §3.9.3
    elif not VALID_REASON_CODES[9].issuperset(codes):
        raise protocol_error("invalid SUBACK reason code")  # [MQTT-3.9.3-2]
    return SubAck(pid, codes, props)


def _unsubscribe(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
    pid, pos = _packet_id(buf, pos, end)
    props = NO_PROPERTIES
    if version == 5:
        props, pos = decode_properties(buf, pos, end, 10, fs)
    filters = []
    while pos < end:
        topic_filter, pos = read_str(buf, pos, end)
        filters.append(topic_filter)
    if not filters:
        raise protocol_error("UNSUBSCRIBE without topic filters")  # [MQTT-3.10.3-2]
    return Unsubscribe(pid, tuple(filters), props)


def _unsuback(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
    pid, pos = _packet_id(buf, pos, end)
    if version < 5:
        _done(pos, end)
        return UnsubAck(pid)
    props, pos = decode_properties(buf, pos, end, 11, fs)
    codes = tuple(buf[pos:end])
    if not VALID_REASON_CODES[11].issuperset(codes):
        raise protocol_error("invalid UNSUBACK reason code")  # [MQTT-3.11.3-2]
    return UnsubAck(pid, codes, props)


def _empty(cls: Any) -> Decoder:
    instance = cls()

    def decode(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
        _done(pos, end)
        return instance  # type: ignore[no-any-return]

    return decode


def _reason_props(cls: Any) -> Decoder:
    ptype = cls.TYPE
    instance = cls()

    def decode(b0: int, buf: bytes, pos: int, end: int, version: int, fs: bool) -> Packet:
        if pos == end:
            return instance  # type: ignore[no-any-return]
        if version < 5:
            if ptype == 15:
                raise malformed("AUTH before MQTT 5")  # reserved packet type in 3.1.1
            raise malformed("DISCONNECT must have Remaining Length 0 before MQTT 5")
        code, pos = read_u8(buf, pos, end)
        _check_reason(ptype, code)
        props: Properties = NO_PROPERTIES
        if pos < end:
            props, pos = decode_properties(buf, pos, end, ptype, fs)
        _done(pos, end)
        return cls(code, props)  # type: ignore[no-any-return]

    return decode


DECODERS: dict[int, Decoder] = {
    2: _connack,
    3: decode_publish,
    4: _ack(PubAck),
    5: _ack(PubRec),
    6: _ack(PubRel),
    7: _ack(PubComp),
    8: _subscribe,
    9: _suback,
    10: _unsubscribe,
    11: _unsuback,
    12: _empty(PingReq),
    13: _empty(PingResp),
    14: _reason_props(Disconnect),
    15: _reason_props(Auth),
}
