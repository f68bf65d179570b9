"""MQTT wire codec: `Decoder` turns a byte stream into packets; `encode` does the reverse.

Theory of operation
-------------------
`Decoder.feed` appends to a buffer only when a packet is incomplete; complete packets are
parsed straight from the bytes given, by offset, so a buffer holding many packets is sliced
once per field and never copied as a whole. The fixed header is parsed first: a Remaining
Length of more than four bytes is malformed [MQTT-1.5.5-1], and a packet larger than
``max_packet_size`` is refused (0x95) before any of its body is buffered; so is a packet whose
first byte alone makes it invalid (wrong type for the role or state, bad flags). The body then
goes to the decoder for its type (`_decode.py`); an ordinary PUBLISH (QoS 0-2, no DUP, a
non-empty topic name, and for MQTT 5 no properties) is decoded inline (the hot path),
anything odd falls back to the general decoder, which raises the precise error.

A server-role decoder starts in the "expect CONNECT" state [MQTT-3.1.0-1], learns the
protocol version from the CONNECT, then refuses a second CONNECT [MQTT-3.1.0-2] and the
packets only a server sends. After an error the decoder is dead: every later `feed` raises
the same error. Nothing but `RemoteProtocolError` escapes `feed`.
"""

from __future__ import annotations

from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol._decode import DECODERS, check_flags, decode_connect, decode_publish
from mqttmesh.protocol._encode import encode_packet, encode_publish
from mqttmesh.protocol._props import encode_properties
from mqttmesh.protocol._wire import malformed, protocol_error
from mqttmesh.protocol.packets import Packet, Publish
from mqttmesh.protocol.properties import NO_PROPERTIES

__all__ = ["Decoder", "encode", "encode_publish", "encode_properties", "MAX_PACKET_SIZE"]

MAX_PACKET_SIZE = 268_435_460
"""The largest packet MQTT can express: 1 + 4 + 268,435,455 bytes."""

# Building a frozen dataclass through its __init__ costs one object.__setattr__ per field;
# setting the slots through their descriptors halves the cost of the hot path.
_new = object.__new__
_SLOTS = vars(Publish)
_set_topic = _SLOTS["topic"].__set__
_set_payload = _SLOTS["payload"].__set__
_set_qos = _SLOTS["qos"].__set__
_set_retain = _SLOTS["retain"].__set__
_set_dup = _SLOTS["dup"].__set__
_set_packet_id = _SLOTS["packet_id"].__set__
_set_properties = _SLOTS["properties"].__set__


_SERVER_ONLY = frozenset({2, 9, 11, 13})  # CONNACK, SUBACK, UNSUBACK, PINGRESP
_CLIENT_ONLY = frozenset({1, 8, 10, 12})  # CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ


def encode(packet: Packet, protocol_version: int) -> bytes:
    """Encode ``packet`` for ``protocol_version`` (3 = 3.1, 4 = 3.1.1, 5 = 5.0).

    Raises:
        LocalProtocolError: the packet cannot be sent as given.
    """
    return encode_packet(packet, protocol_version)


class Decoder:
    """Incremental MQTT packet decoder for one network connection.

    Args:
        role: "server" decodes what clients send, "client" what servers send.
        max_packet_size: the largest packet accepted, fixed header included.
        protocol_version: 3, 4 or 5. A server-role decoder given a version treats the
            connection as already past its CONNECT. A client-role decoder without one
            decodes as 3.1.1 until `protocol_version` is set (MqttConnection does that
            when the CONNECT is sent).

    Attributes:
        protocol_version: the version in use; None in a server-role decoder before CONNECT.
    """

    __slots__ = ("role", "max_packet_size", "protocol_version", "_server", "_connected",
                 "_buf", "_need", "_error")

    def __init__(
        self, role: str = "server", max_packet_size: int = MAX_PACKET_SIZE,
        protocol_version: int | None = None,
    ) -> None:
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        if protocol_version not in (None, 3, 4, 5):
            raise ValueError(f"unsupported protocol version {protocol_version}")
        self.role = role
        self.max_packet_size = max_packet_size
        self._server = role == "server"
        self._connected = protocol_version is not None or not self._server
        if protocol_version is None and not self._server:
            protocol_version = 4
        self.protocol_version: int | None = protocol_version
        self._buf = bytearray()
        self._need = 0
        self._error: RemoteProtocolError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Add received bytes; return the packets they complete, in order.

        Raises:
            RemoteProtocolError: the stream is malformed or breaks the protocol. Its
                ``reason_code`` is the MQTT 5 reason to send; its ``packets`` attribute
                lists the valid packets decoded before the bad one in this call (act on
                them, then close). Errors while decoding a CONNECT also carry
                ``connack_code`` (the CONNACK code to send, None = close without CONNACK)
                and ``protocol_version`` (to encode that CONNACK with; None = use 4).
        """
        if self._error is not None:
            raise self._error
        if type(data) is not bytes:
            data = bytes(data)
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            data = bytes(self._buf)
            self._buf = bytearray()
            self._need = 0
        elif not data:
            return []
        out: list[Packet] = []
        try:
            pos = self._parse(data, out)
        except RemoteProtocolError as exc:
            err = exc
        except (IndexError, ValueError, KeyError, OverflowError, TypeError,
                RecursionError) as exc:  # a safety net: never let these escape
            err = malformed(f"malformed packet ({type(exc).__name__}: {exc})")
        else:
            if pos < len(data):
                self._buf = bytearray(memoryview(data)[pos:])
            return out
        err.packets = out  # type: ignore[attr-defined]
        self._error = err
        raise err

    def _parse(self, data: bytes, out: list[Packet]) -> int:
        n = len(data)
        pos = 0
        server = self._server
        version = self.protocol_version or 4
        fast = self._connected
        v5 = version == 5
        max_size = self.max_packet_size
        append = out.append
        while pos < n:
            # -- fixed header: first byte, Remaining Length (Variable Byte Integer)
            if pos + 1 >= n:
                self._need = 2
                return pos
            rl = data[pos + 1]
            if rl < 0x80:
                start = pos + 2
            else:
                rl &= 0x7F
                shift = 7
                i = pos + 2
                while True:
                    if i >= n:
                        self._need = 0
                        return pos
                    b = data[i]
                    i += 1
                    rl |= (b & 0x7F) << shift
                    if b < 0x80:
                        break
                    shift += 7
                    if shift == 28:
                        raise malformed("remaining length longer than four bytes")  # [MQTT-1.5.5-1]
                start = i
            end = start + rl
            if end - pos > max_size:
                raise RemoteProtocolError(
                    f"packet of {end - pos} bytes exceeds maximum packet size {max_size}", 0x95)
            if end > n:
                # refuse a packet that cannot be valid before buffering its body
                self._check_type(data[pos])
                self._need = end - pos
                return pos
            b0 = data[pos]
            t = b0 >> 4
            # -- hot path: an ordinary PUBLISH (no DUP, a topic name, no MQTT 5 properties);
            # anything unusual goes to decode_publish, which raises the precise error.
            if t == 3 and fast and not b0 & 0x08 and rl >= 3:
                qos = (b0 >> 1) & 3
                tl = (data[start] << 8) | data[start + 1]
                te = start + 2 + tl
                if qos:
                    ps = te + 2
                    pid = (data[te] << 8) | data[te + 1] if ps <= end else 0
                else:
                    ps = te
                    pid = None
                if v5:
                    if ps < end and data[ps] == 0:  # Property Length 0
                        ps += 1
                    else:
                        pid = 0
                if tl and ps <= end and qos < 3 and pid != 0:
                    try:
                        topic = data[start + 2:te].decode()
                    except UnicodeDecodeError:
                        topic = "\x00"
                    if "+" not in topic and "#" not in topic and "\x00" not in topic:
                        p = _new(Publish)
                        _set_topic(p, topic)
                        _set_payload(p, data[ps:end])
                        _set_qos(p, qos)
                        _set_retain(p, b0 & 1 == 1)
                        _set_dup(p, False)
                        _set_packet_id(p, pid)
                        _set_properties(p, NO_PROPERTIES)
                        append(p)
                        pos = end
                        continue
                append(decode_publish(b0, data, start, end, version, not server))
                pos = end
                continue
            # -- everything else
            self._check_type(b0)
            if server and not self._connected:  # a CONNECT, the first packet
                try:
                    packet: Packet = decode_connect(b0, data, start, end)
                except RemoteProtocolError as exc:
                    self.protocol_version = getattr(exc, "protocol_version", None)
                    raise
                self.protocol_version = version = packet.protocol_version  # type: ignore[union-attr]
                self._connected = True
                fast = True
                v5 = version == 5
                append(packet)
            else:
                append(DECODERS[t](b0, data, start, end, version, not server))
            pos = end
        return pos

    def _check_type(self, b0: int) -> None:
        """The checks that need only the first byte: the packet type, for this role and
        state, and the fixed header flags (those of PUBLISH and CONNECT are checked later)."""
        t = b0 >> 4
        if t == 0:
            raise malformed("reserved packet type 0")
        if self._server:
            if not self._connected:
                if t != 1:
                    raise protocol_error("first packet is not CONNECT")  # [MQTT-3.1.0-1]
                return
            if t == 1:
                raise protocol_error("second CONNECT")  # [MQTT-3.1.0-2]
            if t in _SERVER_ONLY:
                raise protocol_error(f"packet type {t} is sent by servers only")
        elif t in _CLIENT_ONLY:
            raise protocol_error(f"packet type {t} is sent by clients only")
        if t == 15 and (self.protocol_version or 4) < 5:
            raise malformed("reserved packet type 15 (AUTH) before MQTT 5")
        if t != 3 and self.protocol_version != 3:
            # MQTT 3.1 reserved no flag values (its retries set DUP on SUBSCRIBE / PUBREL...)
            check_flags(b0)
