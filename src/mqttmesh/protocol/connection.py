"""MqttConnection: a sans-IO MQTT connection endpoint (bytes in, packets out), h11 style."""

from __future__ import annotations

from collections import deque
from typing import Final

from mqttmesh.errors import LocalProtocolError, RemoteProtocolError
from mqttmesh.protocol.codec import MAX_PACKET_SIZE, Decoder, encode
from mqttmesh.protocol.packets import ConnAck, Connect, Packet, PingReq, PingResp, SubAck
from mqttmesh.protocol.packets import Subscribe, UnsubAck, Unsubscribe

__all__ = ["MqttConnection", "NEED_DATA"]


class _NeedData:
    """Sentinel type: `next_event` has nothing until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()

_SERVER_SENDS = (ConnAck, SubAck, UnsubAck, PingResp)
_CLIENT_SENDS = (Connect, Subscribe, Unsubscribe, PingReq)


class MqttConnection:
    """One end of an MQTT connection, without I/O.

    Args:
        role: "server" or "client".
        max_packet_size: passed to the `Decoder`.
        protocol_version: known version (client: the one it will CONNECT with; server: only
            to skip the CONNECT, as in `Decoder`).

    Feed received bytes with `receive_data` (b"" = the peer closed), take packets with
    `next_event` until it returns `NEED_DATA`, and turn packets into bytes with `send`.
    """

    def __init__(
        self, role: str, max_packet_size: int = MAX_PACKET_SIZE,
        protocol_version: int | None = None,
    ) -> None:
        self.role = role
        self._decoder = Decoder(role, max_packet_size, protocol_version)
        self._events: deque[Packet] = deque()
        self._error: RemoteProtocolError | None = None
        self.their_eof = False
        """True once `receive_data(b"")` was called."""

    @property
    def protocol_version(self) -> int | None:
        return self._decoder.protocol_version

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the network; ``b""`` means the peer closed the connection."""
        if not data:
            self.their_eof = True
            return
        if self.their_eof:
            raise LocalProtocolError("receive_data after end of file")
        try:
            self._events.extend(self._decoder.feed(data))
        except RemoteProtocolError as exc:
            self._events.extend(getattr(exc, "packets", ()))
            self._error = exc

    def next_event(self) -> Packet | _NeedData:
        """The next received packet, or `NEED_DATA`.

        Raises:
            RemoteProtocolError: the peer sent something invalid (after the valid packets
                before it were returned), or closed the connection in the middle of a packet.
        """
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        if self.their_eof and self._decoder._buf:
            raise RemoteProtocolError("connection closed in the middle of a packet", 0x81)
        return NEED_DATA

    def send(self, packet: Packet) -> bytes:
        """Encode a packet for the wire.

        Raises:
            LocalProtocolError: the packet is invalid, not ours to send (a server sending a
                CONNECT...), or the version is not known yet.
        """
        if self.role == "server" and isinstance(packet, _CLIENT_SENDS):
            raise LocalProtocolError(f"a server does not send {type(packet).__name__}")
        if self.role == "client" and isinstance(packet, _SERVER_SENDS):
            raise LocalProtocolError(f"a client does not send {type(packet).__name__}")
        if isinstance(packet, Connect):
            self._decoder.protocol_version = packet.protocol_version
        version = self._decoder.protocol_version
        if version is None:
            raise LocalProtocolError("protocol version unknown before CONNECT")
        return encode(packet, version)
