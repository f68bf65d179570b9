"""MQTT 5 property block codec (MQTT 5 §2.2.2): the property table, decode and encode.

The table gives, per property identifier, the `Properties` field, the data type and the
packets it may appear in (§2.2.2.2). ``WILL`` (0) stands for the Will Properties of a CONNECT.
A property not allowed in its packet, or an unknown identifier, is a Malformed Packet;
a property given twice (other than User Property, and Subscription Identifier in a PUBLISH
sent by a server) is a Protocol Error.
"""

from __future__ import annotations

from typing import Any

from mqttmesh.errors import LocalProtocolError, RemoteProtocolError
from mqttmesh.protocol._wire import (
    enc_bin, enc_str, enc_u16, enc_u32, enc_vbi, malformed, protocol_error,
    read_bin, read_str, read_vbi,
)
from mqttmesh.protocol.properties import NO_PROPERTIES, Properties

__all__ = ["WILL", "PROPERTY_TABLE", "decode_properties", "encode_properties"]

WILL = 0
"""Pseudo packet type for the Will Properties of a CONNECT."""

BYTE, U16, U32, VBI, STR, BIN, PAIR = range(7)

_ALL = frozenset(range(0, 16)) - {12, 13}  # every packet with properties, and the will
_PUB_WILL = frozenset({3, WILL})
_ACKS = frozenset({2, 4, 5, 6, 7, 9, 11, 14, 15})

# id: (field, type, allowed packet types)
PROPERTY_TABLE: dict[int, tuple[str, int, frozenset[int]]] = {
    0x01: ("payload_format_indicator", BYTE, _PUB_WILL),
    0x02: ("message_expiry_interval", U32, _PUB_WILL),
    0x03: ("content_type", STR, _PUB_WILL),
    0x08: ("response_topic", STR, _PUB_WILL),
    0x09: ("correlation_data", BIN, _PUB_WILL),
    0x0B: ("subscription_identifiers", VBI, frozenset({3, 8})),
    0x11: ("session_expiry_interval", U32, frozenset({1, 2, 14})),
    0x12: ("assigned_client_identifier", STR, frozenset({2})),
    0x13: ("server_keep_alive", U16, frozenset({2})),
    0x15: ("authentication_method", STR, frozenset({1, 2, 15})),
    0x16: ("authentication_data", BIN, frozenset({1, 2, 15})),
    0x17: ("request_problem_information", BYTE, frozenset({1})),
    0x18: ("will_delay_interval", U32, frozenset({WILL})),
    0x19: ("request_response_information", BYTE, frozenset({1})),
    0x1A: ("response_information", STR, frozenset({2})),
    0x1C: ("server_reference", STR, frozenset({2, 14})),
    0x1F: ("reason_string", STR, _ACKS),
    0x21: ("receive_maximum", U16, frozenset({1, 2})),
    0x22: ("topic_alias_maximum", U16, frozenset({1, 2})),
    0x23: ("topic_alias", U16, frozenset({3})),
    0x24: ("maximum_qos", BYTE, frozenset({2})),
    0x25: ("retain_available", BYTE, frozenset({2})),
    0x26: ("user_properties", PAIR, _ALL),
    0x27: ("maximum_packet_size", U32, frozenset({1, 2})),
    0x28: ("wildcard_subscription_available", BYTE, frozenset({2})),
    0x29: ("subscription_identifier_available", BYTE, frozenset({2})),
    0x2A: ("shared_subscription_available", BYTE, frozenset({2})),
}

# Byte properties whose only values are 0 and 1; anything else is a Protocol Error
# (MQTT 5 §3.1.2.11.7, §3.2.2.3.*, §3.3.2.3.2).
_BOOLEAN_BYTES = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})


# Decoded property blocks, keyed by (packet type, sender, raw bytes). Properties are frozen,
# so one object can serve every packet with the same block: clients tend to repeat theirs
# (a topic alias, a content type), and building a 27-field frozen dataclass costs ~100 times
# a dict lookup. Only valid blocks are stored; the dict is emptied when full.
_CACHE: dict[tuple[int, bool, bytes], Properties] = {}
_CACHE_MAX_ENTRIES = 4096
_CACHE_MAX_BLOCK = 256


def decode_properties(
    buf: bytes, pos: int, end: int, packet_type: int, from_server: bool = False,
) -> tuple[Properties, int]:
    """Decode the property block starting at ``pos`` (its length first); return (props, pos).

    Args:
        packet_type: the packet's type number, or `WILL` for Will Properties.
        from_server: the packet was sent by a server (several Subscription Identifiers may
            then appear in a PUBLISH [MQTT-3.3.4-3]).
    """
    if pos < end and buf[pos] < 0x80:
        length = buf[pos]
        pos += 1
    else:
        length, pos = read_vbi(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise malformed("property length runs past the end of the packet")
    if length == 0:
        return NO_PROPERTIES, pos
    if length > _CACHE_MAX_BLOCK:
        return _decode_block(buf, pos, stop, packet_type, from_server), stop
    key = (packet_type, from_server, buf[pos:stop])
    props = _CACHE.get(key)
    if props is None:
        props = _decode_block(buf, pos, stop, packet_type, from_server)
        if len(_CACHE) >= _CACHE_MAX_ENTRIES:
            _CACHE.clear()
        _CACHE[key] = props
    return props, stop


def _decode_block(
    buf: bytes, pos: int, stop: int, packet_type: int, from_server: bool,
) -> Properties:
    kw: dict[str, Any] = {}
    pairs: list[tuple[str, str]] = []
    sub_ids: list[int] = []
    table = PROPERTY_TABLE
    while pos < stop:
        pid = buf[pos]
        pos += 1
        entry = table.get(pid)
        if entry is None:
            raise malformed(f"unknown property identifier 0x{pid:02X}")  # §2.2.2.2
        name, kind, allowed = entry
        if packet_type not in allowed:
            raise malformed(f"property {name} not allowed in packet type {packet_type}")
        if kind == PAIR:
            k, pos = read_str(buf, pos, stop)
            v, pos = read_str(buf, pos, stop)
            pairs.append((k, v))
            continue
        if kind == BYTE:
            if pos >= stop:
                raise malformed("property value runs past the property block")
            value: Any = buf[pos]
            pos += 1
            if pid in _BOOLEAN_BYTES and value > 1:
                raise protocol_error(f"{name} must be 0 or 1, got {value}")
        elif kind == U16:
            if pos + 2 > stop:
                raise malformed("property value runs past the property block")
            value = (buf[pos] << 8) | buf[pos + 1]
            pos += 2
        elif kind == U32:
            if pos + 4 > stop:
                raise malformed("property value runs past the property block")
            value = int.from_bytes(buf[pos:pos + 4], "big")
            pos += 4
        elif kind == STR:
            value, pos = read_str(buf, pos, stop)
        elif kind == BIN:
            value, pos = read_bin(buf, pos, stop)
        else:  # VBI: only the Subscription Identifier
            value, pos = read_vbi(buf, pos, stop)
            if value == 0:
                raise protocol_error("subscription identifier 0")  # §3.8.2.1.2
            if sub_ids and not (packet_type == 3 and from_server):
                raise protocol_error("subscription identifier given twice")
            sub_ids.append(value)
            continue
        if name in kw:
            raise protocol_error(f"property {name} given twice")  # §2.2.2.2
        kw[name] = value
    if pos != stop:
        raise malformed("property block overruns its length")
    if kw.get("receive_maximum") == 0:
        raise protocol_error("receive maximum 0")  # §3.1.2.11.3
    if kw.get("maximum_packet_size") == 0:
        raise protocol_error("maximum packet size 0")  # §3.1.2.11.4
    if kw.get("topic_alias") == 0:
        raise RemoteProtocolError("topic alias 0", 0x94)  # §3.3.2.3.4
    if "authentication_data" in kw and "authentication_method" not in kw:
        raise protocol_error("authentication data without authentication method")
    if pairs:
        kw["user_properties"] = tuple(pairs)
    if sub_ids:
        kw["subscription_identifiers"] = tuple(sub_ids)
    return Properties(**kw)


_FIELDS = [(pid, name, kind, allowed) for pid, (name, kind, allowed) in PROPERTY_TABLE.items()]
_EMPTY_BLOCK = b"\x00"


def encode_properties(props: Properties, packet_type: int) -> bytes:
    """Encode a property block, with its length prefix.

    Args:
        props: the properties; None / empty fields are left out.
        packet_type: the packet's type number, or `WILL` (0) for Will Properties.

    Raises:
        LocalProtocolError: a property not allowed in that packet, or a value out of range.
    """
    if props is NO_PROPERTIES:
        return _EMPTY_BLOCK
    out: list[bytes] = []
    try:
        for pid, name, kind, allowed in _FIELDS:
            value = getattr(props, name)
            if value is None or value == ():
                continue
            if packet_type not in allowed:
                raise LocalProtocolError(f"property {name} not allowed in packet type {packet_type}")
            if kind == PAIR:
                for k, v in value:
                    out.append(b"\x26" + enc_str(k) + enc_str(v))
            elif kind == VBI:
                for v in value:
                    if not 0 < v < 268435456:
                        raise LocalProtocolError(f"subscription identifier {v} out of range")
                    out.append(b"\x0b" + enc_vbi(v))
            elif kind == BYTE:
                out.append(bytes((pid, value)))
            elif kind == U16:
                out.append(bytes((pid,)) + enc_u16(value))
            elif kind == U32:
                out.append(bytes((pid,)) + enc_u32(value))
            elif kind == STR:
                out.append(bytes((pid,)) + enc_str(value))
            else:
                out.append(bytes((pid,)) + enc_bin(value))
    except (ValueError, OverflowError, TypeError) as exc:  # bad value, out of range
        raise LocalProtocolError(f"cannot encode properties: {exc}") from exc
    body = b"".join(out)
    return enc_vbi(len(body)) + body
