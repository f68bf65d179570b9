"""Peer links: authenticated, framed, batched socket links between nodes (and from ctl).

Theory of operation
-------------------
``open_link`` (the connecting side) and ``accept_link`` (the listening side) run the cookie
handshake of ``cluster.handshake`` over ``cluster.wire`` frames, with the pre-auth frame limit
(4 KiB) and a deadline, so a stranger can neither make us buffer much nor hold a socket open
for long. Outgoing sockets are bound to this node's own host address (SPEC §3). Once
authenticated a ``PeerLink`` carries batches of v1 messages:

* ``send(msg)`` appends to a pending batch; the first send in a loop iteration schedules one
  ``call_soon`` flush writing one frame for everything sent in that iteration (batching).
* ``run(handler)`` reads frames until EOF, error or heartbeat timeout and calls
  ``handler(link, msg)`` for every message (``REPLY`` completes ``request`` futures itself).
* Failure detector: a fixed-timeout heartbeat. Every link sends ``HEARTBEAT`` each
  ``HEARTBEAT_INTERVAL`` s; a link that receives nothing for ``HEARTBEAT_TIMEOUT`` s is closed
  and its peer considered down (TCP resets and EOF close it at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from mqttmesh.cluster import (
    MAX_FRAME,
    ClientHandshake,
    FrameDecoder,
    REFUSE,
    PeerInfo,
    ServerHandshake,
    encode_frame,
    v1,
    v2,
)
from mqttmesh.errors import ClusterError, HandshakeError

__all__ = [
    "PeerLink",
    "Requester",
    "open_link",
    "accept_link",
    "LinkUnreachable",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
]

log = logging.getLogger("mqttmesh.cluster.link")

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 5.0
READ_CHUNK = 65536
PRE_AUTH_READ = 4096

Handler = Callable[["PeerLink", list[Any]], Awaitable[None] | None]


class LinkUnreachable(ClusterError):
    """The peer's port could not be reached (refused, timeout, no route)."""


class Requester:
    """``request`` / ``REPLY`` matching for anything with ``send`` and ``peer`` (a socket
    ``PeerLink`` or a relayed ``cluster_relay.RelayLink``)."""

    peer: PeerInfo
    _requests: dict[int, asyncio.Future[Any]]
    _ids: itertools.count[int]

    def send(self, msg: list[Any]) -> None:
        raise NotImplementedError

    async def request(self, op: str, args: dict[str, Any] | None = None,
                      timeout: float = 10.0) -> Any:
        """Send ``REQUEST`` and wait for its ``REPLY``.

        Raises:
            ClusterError: the peer answered with an error, timed out, or the link closed.
        """
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        self.send([v1.REQUEST, rid, op, args or {}])
        try:
            ok, result = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise ClusterError(f"{self.peer.name} did not answer in {timeout:g}s") from None
        finally:
            self._requests.pop(rid, None)
        if not ok:
            raise ClusterError(str(result))
        return result

    def complete(self, reply: list[Any]) -> None:
        """A ``REPLY [8, id, ok, result]`` arrived: wake its ``request``."""
        fut = self._requests.get(reply[1])
        if fut is not None and not fut.done():
            fut.set_result((reply[2], reply[3]))


class PeerLink(Requester):
    """One authenticated link; either direction.

    Attributes:
        peer: who is on the other side (from the handshake).
        address: ``host:port`` of the other side, for logs.
        outgoing: True if we connected.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 decoder: FrameDecoder, peer: PeerInfo, outgoing: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = decoder
        decoder.max_frame_size = MAX_FRAME
        self.peer = peer
        self.outgoing = outgoing
        self.address = _peer_address(writer)
        self.closed = False
        self.last_heard = asyncio.get_running_loop().time()
        self._pending: list[list[Any]] = []
        self._scheduled = False
        self._requests: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.close_reason = ""
        self.bytes_out = self.bytes_in = 0      # after the handshake: frames written / read
        self.messages_out = self.messages_in = 0
        self.fair = False
        """Yield to the event loop after each frame (RPC links: forwarded batches must not
        starve the local clients they are delivered to)."""

    # -- sending ---------------------------------------------------------------------------
    def send(self, msg: list[Any]) -> None:
        """Queue a message; it is written with everything else sent this loop iteration."""
        if self.closed:
            return
        self._pending.append(msg)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self.closed or not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            frame = encode_frame(batch)
            self.bytes_out += len(frame)
            self.messages_out += len(batch)
            self.writer.write(frame)
        except (ConnectionError, RuntimeError) as exc:
            self.close(f"write failed: {exc}")

    async def drain(self) -> None:
        """Flush and wait until the socket buffer has room (or the link is closed)."""
        self.flush()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.writer.drain()

    # -- receiving -------------------------------------------------------------------------
    async def run(self, handler: Handler) -> None:
        """Read until the link closes; dispatch every message to ``handler``."""
        loop = asyncio.get_running_loop()
        try:
            await self._process(handler)  # frames that arrived with the handshake's last one
            while not self.closed:
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_CHUNK),
                                                  HEARTBEAT_TIMEOUT)
                except asyncio.TimeoutError:
                    self.close("heartbeat timeout")
                    break
                if not data:
                    self.close("closed by peer")
                    break
                self.last_heard = loop.time()
                self.bytes_in += len(data)
                self.decoder.receive_data(data)
                await self._process(handler)
        except HandshakeError as exc:  # FrameError: garbage from an authenticated peer
            self.close(f"bad data: {exc}")
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError) as exc:  # before Exception: not a bug, a reset
            self.close(f"connection error: {exc}")
        except Exception:  # a bug in a handler must cost one link, not the node
            log.exception("cluster message handling failed",
                          extra={"kv": {"peer": self.peer.name}})
            self.close("internal error")
        finally:
            self.close(self.close_reason or "closed")

    async def _process(self, handler: Handler) -> None:
        validate = v2.validate if self.peer.version >= 2 else v1.validate
        while (batch := self.decoder.next_batch()) is not None:
            self.messages_in += len(batch)
            for msg in batch:
                if self.closed:
                    return
                kind = validate(msg)
                if kind == v1.HEARTBEAT:
                    continue
                if kind == v1.REPLY:
                    self.complete(msg)
                    continue
                result = handler(self, msg)
                if result is not None:
                    await result
            if self.fair:
                await asyncio.sleep(0)  # let client connections run between two batches

    async def heartbeat(self) -> None:
        """Send HEARTBEAT every interval until the link closes."""
        while not self.closed:
            self.send([v1.HEARTBEAT])
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if self._pending:
            with contextlib.suppress(Exception):
                self.writer.write(encode_frame(self._pending))
            self._pending = []
        for fut in self._requests.values():
            if not fut.done():
                fut.set_result((False, f"link to {self.peer.name} closed: {reason}"))
        with contextlib.suppress(Exception):
            self.writer.close()

    def abort(self) -> None:
        """Close without flushing (used when a node must vanish from a peer's view)."""
        self._pending = []
        self.close("aborted")
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


def _peer_address(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return "?"


async def _read_handshake_msg(reader: asyncio.StreamReader, decoder: FrameDecoder) -> Any:
    while True:
        batch = decoder.next_batch()
        if batch is not None:
            if len(batch) != 1:
                raise HandshakeError("malformed handshake frame")
            return batch[0]
        data = await reader.read(PRE_AUTH_READ)
        if not data:
            raise HandshakeError("connection closed during the handshake")
        decoder.receive_data(data)  # raises at once on an oversized frame header


Secure = Callable[[asyncio.StreamWriter], Awaitable[None]]


def _tls_reason(exc: ssl.SSLError) -> str:
    return str(getattr(exc, "verify_message", "") or exc.reason or exc).lower()


async def open_link(host: str, port: int, hs: ClientHandshake, local_host: str | None,
                    timeout: float = HANDSHAKE_TIMEOUT, *, family: int = 0,
                    secure: Secure | None = None) -> PeerLink:
    """Connect and authenticate.

    ``family`` restricts the address family (``runtime.dist_transport``); ``secure(writer)``
    upgrades the connection (TLS) before the cookie handshake, within ``timeout``.

    Raises:
        LinkUnreachable: the port cannot be reached.
        HandshakeError: refused (wrong cookie, other cluster, ...).
    """
    local_addr = (local_host, 0) if local_host else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local_addr, family=family),
            timeout)
    except asyncio.TimeoutError:
        raise LinkUnreachable(f"timed out connecting to {host}:{port}") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        raise LinkUnreachable(f"cannot reach {host}:{port}: {reason.lower()}") from None
    decoder = FrameDecoder()
    try:
        async with asyncio.timeout(timeout):
            if secure is not None:
                await secure(writer)
            writer.write(encode_frame([hs.initiate()]))
            while True:
                reply = hs.receive(await _read_handshake_msg(reader, decoder))
                if reply is not None:
                    writer.write(encode_frame([reply]))
                if hs.done:
                    break
    except asyncio.TimeoutError:
        writer.close()
        raise HandshakeError(f"no handshake answer from {host}:{port} in {timeout:g}s") \
            from None
    except ssl.SSLError as exc:
        writer.close()
        raise HandshakeError(f"TLS handshake failed: {_tls_reason(exc)}") from None
    except (HandshakeError, OSError, RuntimeError) as exc:
        # RuntimeError: uvloop's write on a transport the peer reset right after connect
        # ("the handler is closed"); an escaped one would take the cluster service down
        writer.close()
        if isinstance(exc, HandshakeError):
            raise
        if secure is not None:  # TLS was up: a reset now is the peer refusing our certificate
            raise HandshakeError("refused by peer: TLS connection reset during the handshake "
                                 "(our certificate refused?)") from None
        raise LinkUnreachable(f"connection to {host}:{port} lost during the handshake") \
            from None
    assert hs.peer is not None
    return PeerLink(reader, writer, decoder, hs.peer, outgoing=True)


async def accept_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      hs: ServerHandshake, timeout: float = HANDSHAKE_TIMEOUT, *,
                      secure: Secure | None = None,
                      check: Callable[[PeerInfo], str | None] | None = None) -> PeerLink:
    """Authenticate an accepted connection.

    ``secure(writer)`` upgrades it first (TLS); ``check(claimed)`` runs once HELLO is in and
    returns a reason to refuse the peer for (e.g. its certificate does not name its host).

    Raises:
        HandshakeError: with a one-line reason; a REFUSE has been sent when appropriate and
            the socket is closed.
    """
    decoder = FrameDecoder()
    try:
        async with asyncio.timeout(timeout):
            if secure is not None:
                await secure(writer)
            while not hs.done:
                reply = hs.receive(await _read_handshake_msg(reader, decoder))
                if check is not None and hs.claimed is not None:
                    reason, check = check(hs.claimed), None
                    if reason is not None:
                        hs.refusal = [REFUSE, reason]
                        raise HandshakeError(reason)
                writer.write(encode_frame([reply]))
    except asyncio.TimeoutError:
        writer.close()
        raise HandshakeError("no handshake in time") from None
    except ssl.SSLError as exc:
        writer.transport.abort()
        raise HandshakeError(f"TLS handshake failed: {_tls_reason(exc)}") from None
    except HandshakeError:
        if hs.refusal is not None:
            with contextlib.suppress(Exception):
                writer.write(encode_frame([hs.refusal]))
        with contextlib.suppress(Exception):
            writer.close()
        raise
    except (OSError, RuntimeError):  # RuntimeError: a write on a transport reset meanwhile
        with contextlib.suppress(Exception):
            writer.close()
        raise HandshakeError("connection lost during the handshake") from None
    assert hs.peer is not None
    return PeerLink(reader, writer, decoder, hs.peer, outgoing=False)
