"""Primitive MQTT data types (MQTT 5 §1.5): integers, strings, binary data, variable byte integers.

Readers take ``(buf, pos, end)`` and return ``(value, new_pos)``; they never read past ``end``
and raise `RemoteProtocolError` (0x81 Malformed Packet) instead of IndexError / UnicodeError.
Writers return ``bytes``.
"""

from __future__ import annotations

from mqttmesh.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MALFORMED", "PROTOCOL_ERROR", "malformed", "protocol_error",
    "read_u8", "read_u16", "read_u32", "read_vbi", "read_str", "read_bin",
    "enc_u16", "enc_u32", "enc_vbi", "enc_str", "enc_bin",
]

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82


def malformed(msg: str) -> RemoteProtocolError:
    """A Malformed Packet error (reason 0x81)."""
    return RemoteProtocolError(msg, MALFORMED)


def protocol_error(msg: str) -> RemoteProtocolError:
    """A Protocol Error (reason 0x82)."""
    return RemoteProtocolError(msg, PROTOCOL_ERROR)


def read_u8(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise malformed("packet too short: byte expected")
    return buf[pos], pos + 1


def read_u16(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise malformed("packet too short: two byte integer expected")
    return (buf[pos] << 8) | buf[pos + 1], pos + 2


def read_u32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise malformed("packet too short: four byte integer expected")
    return int.from_bytes(buf[pos:pos + 4], "big"), pos + 4


def read_vbi(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Variable Byte Integer, at most four bytes [MQTT-1.5.5-1]."""
    value = 0
    shift = 0
    for _ in range(4):
        if pos >= end:
            raise malformed("packet too short: variable byte integer expected")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    raise malformed("variable byte integer longer than four bytes")  # [MQTT-1.5.5-1]


def read_str(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    """UTF-8 Encoded String (MQTT 5 §1.5.4, 3.1.1 §1.5.3)."""
    if pos + 2 > end:
        raise malformed("packet too short: string length expected")
    n = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    stop = pos + n
    if stop > end:
        raise malformed("string runs past the end of the packet")
    try:
        # strict decoding rejects ill-formed sequences, overlong forms and surrogates
        s = buf[pos:stop].decode("utf-8")  # [MQTT-1.5.4-1] [MQTT-1.5.3-1]
    except UnicodeDecodeError:
        raise malformed("ill-formed UTF-8 string") from None
    if "\x00" in s:
        raise malformed("UTF-8 string contains U+0000")  # [MQTT-1.5.4-2] [MQTT-1.5.3-2]
    return s, stop


def read_bin(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """Binary Data: two byte length then bytes (MQTT 5 §1.5.6)."""
    if pos + 2 > end:
        raise malformed("packet too short: binary data length expected")
    n = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    stop = pos + n
    if stop > end:
        raise malformed("binary data runs past the end of the packet")
    return bytes(buf[pos:stop]), stop


def enc_u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def enc_u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


_VBI1 = [bytes((i,)) for i in range(128)]


def enc_vbi(v: int) -> bytes:
    """Variable Byte Integer in the minimum number of bytes [MQTT-1.5.5-1]."""
    if v < 128:
        return _VBI1[v]
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_str(s: str) -> bytes:
    """UTF-8 Encoded String; raises LocalProtocolError for U+0000, ValueError / OverflowError
    for surrogates and strings over 65,535 bytes (the encoder turns those into
    LocalProtocolError)."""
    if "\x00" in s:
        raise LocalProtocolError("U+0000 in a UTF-8 string")  # [MQTT-1.5.4-2]
    b = s.encode("utf-8")
    return len(b).to_bytes(2, "big") + b


def enc_bin(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b
