"""Client links: one asyncio Protocol per MQTT connection, bridging a socket and a Channel.

Theory of operation
-------------------
A link is both the asyncio ``Protocol`` of its transport and the broker's ``Outlet`` for its
``Channel``:

* ``data_received(data)`` -> ``channel.handle_data(data, loop.time())``. No tasks, no streams:
  the broker is synchronous, so a callback is all a connection needs (small memory per
  idle connection: one slotted object plus the transport and the channel).
* ``write(data)`` (called by the broker, possibly for thousands of links during one publish)
  only appends to the link's pending list. The first write in a loop iteration registers the
  link with the shared ``FlushScheduler``; one ``loop.call_soon`` per iteration then flushes
  every dirty link with a single ``transport.writelines`` (WebSocket: one binary frame).
* ``close()`` flushes what is pending, then closes the transport (which drains its buffer).
* ``connection_lost`` -> ``channel.handle_closed(now)``, exactly once.

Backpressure. A slow subscriber must never stall publishers, so reading is never paused
because of somebody else's buffer; queueing and dropping of QoS 1/2 belong to the broker.
But what a link holds for its socket is bounded: when its queued bytes (the transport's write
buffer as of the last flush, plus what is pending for the next flush) exceed
``WRITE_HIGH_WATER`` (8 MB), or the transport has called ``pause_writing``, the link is
*congested* and QoS 0 PUBLISH packets written to it are dropped (counted in
``FlushScheduler.dropped_qos0``); other packets (acks, QoS 1/2 PUBLISH, DISCONNECT) are still
written. ``resume_writing`` (buffer back under ``WRITE_LOW_WATER``) ends it. Pending bytes
count too because one loop iteration may carry megabytes from a fast publisher (uvloop reads
up to 32 chunks per socket per iteration), long before the transport could say anything.
Cost: one addition and one comparison per write. It relies on the broker writing one whole
packet per ``write`` call (it does: one encoded PUBLISH per subscriber).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol, cast

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

if TYPE_CHECKING:
    from mqttmesh.runtime.listeners import Listener

__all__ = [
    "WRITE_HIGH_WATER",
    "WRITE_LOW_WATER",
    "FlushScheduler",
    "ClientLink",
    "WsClientLink",
]

log = logging.getLogger("mqttmesh.runtime.client_link")

WRITE_HIGH_WATER = 8 * 1024 * 1024
"""Transport write buffer above which a link is congested and drops QoS 0 PUBLISH packets."""
WRITE_LOW_WATER = 2 * 1024 * 1024
"""Transport write buffer below which a congested link recovers."""


class _Channel(Protocol):
    def handle_data(self, data: bytes, now: float) -> Any: ...
    def handle_closed(self, now: float) -> Any: ...


class FlushScheduler:
    """Flushes every link written to during one loop iteration, with one ``call_soon``."""

    __slots__ = ("_loop", "_dirty", "_scheduled", "dropped_qos0", "_drop_logged_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[ClientLink] = []
        self._scheduled = False
        self.dropped_qos0 = 0
        """QoS 0 PUBLISH packets dropped because their link's write buffer was full."""
        self._drop_logged_at = -1e9

    def count_drop(self, link: ClientLink) -> None:
        """One QoS 0 PUBLISH dropped for a congested link: counted, logged at most every
        10 s (with the running total) so a flood of drops cannot flood the log."""
        self.dropped_qos0 += 1
        now = self._loop.time()
        if now - self._drop_logged_at >= 10.0:
            self._drop_logged_at = now
            log.warning("slow subscriber: QoS 0 messages dropped for a connection with "
                        "more than %d bytes unsent (%s; %d dropped in total)",
                        WRITE_HIGH_WATER, link.peer, self.dropped_qos0)

    def mark(self, link: ClientLink) -> None:
        self._dirty.append(link)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        for link in dirty:
            try:
                link.flush()
            except Exception:  # a broken transport must not starve the other links
                log.exception("flush failed for %s", link.peer)
                link.abort()


def _is_qos0_publish(data: bytes) -> bool:
    # Fixed header byte: type 3 in bits 7-4, QoS in bits 2-1 (dup, retain ignored).
    return bool(data) and (data[0] & 0xF6) == 0x30


class ClientLink(asyncio.Protocol):
    """Plain MQTT over a byte transport (TCP or TLS). Also the Channel's Outlet."""

    __slots__ = (
        "listener", "transport", "channel", "peer", "_pending", "_pending_bytes", "_buffered",
        "_closing", "_congested", "_lost", "_loop", "_scheduler",
    )

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self._loop = listener.loop
        self._scheduler = listener.scheduler
        self.transport: asyncio.Transport | None = None
        self.channel: _Channel | None = None
        self.peer = "?"
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0
        self._buffered = 0  # transport write buffer size after the last flush
        self._closing = False
        self._congested = False
        self._lost = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have its methods
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            host = peername[0]
            self.peer = f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
        if not self.listener.admit(self):
            self._closing = True
            transport.abort()
            return
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        self._open_channel()

    def _open_channel(self) -> None:
        self.channel = self.listener.broker.open_channel(
            self, self.peer, self.listener.name, self._loop.time()
        )

    def data_received(self, data: bytes) -> None:
        channel = self.channel
        if channel is None or self._closing:
            return
        try:
            channel.handle_data(data, self._loop.time())
        except Exception:
            log.exception("channel failed on data from %s; closing the connection", self.peer)
            self.abort()

    def eof_received(self) -> bool:
        channel = self.channel
        if channel is not None and not self._closing:
            try:
                channel.handle_data(b"", self._loop.time())
            except Exception:
                log.exception("channel failed on EOF from %s", self.peer)
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._pending = None
        self.listener.release(self)
        channel = self.channel
        if channel is not None:
            try:
                channel.handle_closed(self._loop.time())
            except Exception:
                log.exception("channel failed on close of %s", self.peer)

    def pause_writing(self) -> None:
        self._congested = True

    def resume_writing(self) -> None:
        self._congested = False
        self._buffered = 0  # below the low-water mark; refreshed at the next flush

    # -- Outlet ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue bytes for this connection; flushed once per loop iteration."""
        if self._closing:
            return
        if (
            self._congested or self._buffered + self._pending_bytes > WRITE_HIGH_WATER
        ) and _is_qos0_publish(data):
            self._scheduler.count_drop(self)
            return
        self._pending_bytes += len(data)
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._scheduler.mark(self)
        else:
            pending.append(data)

    def close(self) -> None:
        """Flush what is pending, then close the connection (idempotent)."""
        if self._closing:
            return
        self.flush()
        self._closing = True
        self._close_transport()

    # -- internals -------------------------------------------------------------------------
    def flush(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_bytes = 0
        transport = self.transport
        if transport is not None and not self._lost:
            self._send(transport, pending)
            self._buffered = transport.get_write_buffer_size()

    def _send(self, transport: asyncio.Transport, pending: list[bytes]) -> None:
        transport.writelines(pending)

    def _close_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._closing = True
        self._pending = None
        if self.transport is not None:
            self.transport.abort()


class WsClientLink(ClientLink):
    """MQTT over WebSocket (RFC 6455, via wsproto): binary frames carry MQTT bytes.

    The HTTP upgrade must ask for the listener's path (default ``/mqtt``); the subprotocol
    ``mqtt`` (or ``mqttv3.1``/``mqttv3.1.1``) is echoed when offered. MQTT packets may span
    frames and a frame may hold several packets: frames are just a byte stream to the
    Channel. Text frames are a protocol error (MQTT-6.0.0-1): the connection is closed.
    """

    __slots__ = ("_ws", "_upgraded", "_upgrade_timer")

    SUBPROTOCOLS = ("mqtt", "mqttv3.1.1", "mqttv3.1")

    def __init__(self, listener: Listener) -> None:
        super().__init__(listener)
        self._ws = WSConnection(ConnectionType.SERVER)
        self._upgraded = False
        self._upgrade_timer: asyncio.TimerHandle | None = None

    def _open_channel(self) -> None:
        # The Channel (and with it the broker's idle timeout) starts once the HTTP upgrade is
        # accepted; until then this link enforces the same idle timeout itself.
        self._upgrade_timer = self._loop.call_later(
            self.listener.idle_timeout, self._upgrade_timed_out
        )

    def _upgrade_timed_out(self) -> None:
        self._upgrade_timer = None
        if not self._upgraded and not self._closing:
            log.info("websocket upgrade from %s timed out", self.peer)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
            self._upgrade_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        ws = self._ws
        try:
            ws.receive_data(data)
            for event in ws.events():
                if self._closing:
                    return
                if isinstance(event, BytesMessage):
                    channel = self.channel
                    if channel is not None:
                        channel.handle_data(bytes(event.data), self._loop.time())
                elif isinstance(event, Request):
                    self._on_request(event)
                elif isinstance(event, Ping):
                    self._raw_write(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self._on_ws_close(event)
                elif isinstance(event, TextMessage):
                    # [MQTT-6.0.0-1] MQTT Control Packets MUST be sent in binary data frames.
                    self._ws_fail(1003, "text frames are not MQTT")
        except (WsRemoteProtocolError, WsLocalProtocolError) as exc:
            log.info("websocket protocol error from %s: %s", self.peer, exc)
            self.abort()
        except Exception:
            log.exception("channel failed on data from %s; closing the connection", self.peer)
            self.abort()

    def _on_request(self, event: Request) -> None:
        path = event.target.split("?", 1)[0]
        if path != self.listener.ws_path:
            self._raw_write(
                self._ws.send(RejectConnection(status_code=404, headers=[], has_body=False))
            )
            self._closing = True
            self._close_transport()
            return
        offered = list(event.subprotocols)
        subprotocol = next((p for p in self.SUBPROTOCOLS if p in offered), None)
        self._raw_write(self._ws.send(AcceptConnection(subprotocol=subprotocol)))
        self._upgraded = True
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
            self._upgrade_timer = None
        super()._open_channel()

    def _on_ws_close(self, event: CloseConnection) -> None:
        channel = self.channel
        self.flush()
        try:
            self._raw_write(self._ws.send(event.response()))
        except WsLocalProtocolError:
            pass
        if channel is not None:
            channel.handle_data(b"", self._loop.time())
        if not self._closing:
            self._closing = True
            self._close_transport_only()

    def _ws_fail(self, code: int, reason: str) -> None:
        self.flush()
        self._closing = True
        try:
            self._raw_write(self._ws.send(CloseConnection(code=code, reason=reason)))
        except WsLocalProtocolError:
            pass
        self._close_transport_only()

    def _raw_write(self, data: bytes) -> None:
        if self.transport is not None and not self._lost and data:
            self.transport.write(data)

    def _send(self, transport: asyncio.Transport, pending: list[bytes]) -> None:
        if not self._upgraded:
            return
        payload = pending[0] if len(pending) == 1 else b"".join(pending)
        transport.write(self._ws.send(BytesMessage(data=payload)))

    def _close_transport(self) -> None:
        if self._upgraded:
            try:
                self._raw_write(self._ws.send(CloseConnection(code=1000)))
            except WsLocalProtocolError:
                pass
        self._close_transport_only()

    def _close_transport_only(self) -> None:
        if self.transport is not None:
            self.transport.close()
