"""A small asyncio HTTP/1.1 server on h11 (sans-IO): the dashboard listener's socket side.

The server knows nothing about the API: it parses requests with ``h11``, hands each one as an
``HttpRequest`` to a handler coroutine (given by the front-end, ``api.make_app``) and writes
the ``HttpResponse`` back; keep-alive, bounded bodies, idle timeout. Malformed HTTP gets a
400 with a JSON reason; a handler bug a 500 (logged) and never takes the node down.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import h11

from mqttmesh.runtime.listeners import ListenerBindError

__all__ = ["HttpRequest", "HttpResponse", "HttpServer", "Handler", "json_response"]

log = logging.getLogger("mqttmesh.http")

MAX_BODY = 1 << 20
"""Largest request body accepted (413 above)."""
IDLE_TIMEOUT = 60.0
"""A keep-alive connection with no request for this long is closed."""
READ_SIZE = 65536


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str                      # as sent (still percent-encoded), no query
    query: dict[str, str]
    headers: dict[str, str]        # lower-case names; repeated headers joined by ", "
    body: bytes
    peer: str = ""


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def json_response(status: int, obj: object, headers: list[tuple[str, str]] | None = None
                  ) -> HttpResponse:
    """A JSON response."""
    return HttpResponse(status, json.dumps(obj).encode(), "application/json", headers or [])


def _error(status: int, code: str, message: str) -> HttpResponse:
    return json_response(status, {"code": code, "message": message})


class HttpServer:
    """One HTTP listener.

    Args:
        host, port: where to bind (port 0 = any free port).
        handler: coroutine HttpRequest -> HttpResponse.
        listener_id: for logs and bind errors (``http:dashboard``).
        max_connections: extra connections are closed at accept (None = no limit).
    """

    def __init__(self, host: str, port: int, handler: Handler, listener_id: str = "http:dashboard",
                 max_connections: int | None = None) -> None:
        self.host, self.port = host, port
        self.handler = handler
        self.listener_id = listener_id
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def bound_port(self) -> int:
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def start(self) -> None:
        """Bind. Raises ListenerBindError when the port is taken."""
        try:
            self._server = await asyncio.start_server(self._serve, self.host or None, self.port,
                                                      reuse_address=True)
        except OSError as exc:
            raise ListenerBindError(self.listener_id, f"{self.host}:{self.port}",
                                    exc.strerror or str(exc)) from exc

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns):
            writer.close()
        if self._server is not None:
            try:
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            except TimeoutError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.max_connections is not None and len(self._conns) >= self.max_connections:
            writer.close()
            return
        self._conns.add(writer)
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            await self._loop(conn, reader, writer, peer_text)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("http connection failed")
        finally:
            self._conns.discard(writer)
            writer.close()

    async def _loop(self, conn: h11.Connection, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, peer: str) -> None:
        while True:
            try:
                request = await self._read_request(conn, reader)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(conn, writer, _error(
                        exc.error_status_hint, "BAD_REQUEST", f"malformed HTTP: {exc}"), close=True)
                return
            except _TooLarge:
                await self._send(conn, writer, _error(413, "PAYLOAD_TOO_LARGE",
                                                      f"body over {MAX_BODY} bytes"), close=True)
                return
            if request is None:
                return
            request.peer = peer
            try:
                response = await self.handler(request)
            except Exception:
                log.exception("http handler failed", extra={"kv": {"path": request.path}})
                response = _error(500, "INTERNAL_ERROR", "internal error")
            await self._send(conn, writer, response, close=False)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader
                            ) -> HttpRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    data = await reader.read(READ_SIZE)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _TooLarge()
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return _to_request(head, bytes(body))
            elif isinstance(event, (h11.ConnectionClosed, h11.PAUSED)):
                return None

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                    response: HttpResponse, close: bool) -> None:
        headers = [("content-type", response.content_type),
                   ("content-length", str(len(response.body))),
                   ("cache-control", "no-store"), *response.headers]
        if close:
            headers.append(("connection", "close"))
        try:
            data = conn.send(h11.Response(status_code=response.status, headers=headers))
            data += conn.send(h11.Data(data=response.body)) if response.body else b""
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        writer.write(data)
        await writer.drain()


class _TooLarge(Exception):
    pass


def _to_request(head: h11.Request, body: bytes) -> HttpRequest:
    target = head.target.decode("latin-1")
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    for name, value in head.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return HttpRequest(
        method=head.method.decode("ascii", "replace").upper(),
        path=parts.path or "/",
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=body,
    )
