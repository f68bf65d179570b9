"""epmd mode (``WITH_EPMD=1``): the port mapper on 4369 and a node's registration with it.

Theory of operation
-------------------
The mapper speaks the subset of Erlang's EPMD protocol that distribution needs, byte for
byte (``ALIVE2_REQ`` 120 → ``ALIVE2_X_RESP`` 118, ``PORT_PLEASE2_REQ`` 122 → ``PORT2_RESP``
119, ``NAMES_REQ`` 110), so a node may also register with a real ``epmd`` already running on
the host, and ``epmd -names`` style tools can read ours. Names are the *alive* part of the
node name (``mqttmesh1`` of ``mqttmesh1@127.0.0.1``): one mapper serves one host address.

**Design: every node can be the mapper.** ``EpmdAgent.run`` first tries to bind
``host:4369`` (the host of its own node name). If it gets it, it serves the mapper in
process and registers itself in it. If the port is taken, it connects to whoever holds it
(another mqttmesh node, or epmd) and registers with ``ALIVE2_REQ``, keeping that connection
open: as in epmd, a registration lives exactly as long as its connection, so a killed node
disappears from the mapper at once. When the connection drops (the node hosting the mapper
stopped or died) the agent starts over: one surviving node wins the bind and becomes the
mapper, the others register with it. There is no separate daemon to start, stop or leave
behind, and no single node whose death loses the others' registrations for longer than a
reconnect (a few ms; lookups failing meanwhile are retried by the link connectors).

Registration (``ALIVE2_REQ``) is accepted only from a connection whose source address is
the mapper's own address or a loopback address (epmd's rule: only local nodes register);
lookups are open. Requests are limited to 512 bytes and 5 s; anything else is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct

from mqttmesh.errors import ClusterError
from mqttmesh.logs import log_event

__all__ = ["EPMD_PORT", "PortMapper", "EpmdAgent", "port_please", "names", "alive_name"]

log = logging.getLogger("mqttmesh.cluster.epmd")

EPMD_PORT = 4369
ALIVE2_REQ, ALIVE2_RESP, ALIVE2_X_RESP = 120, 121, 118
PORT_PLEASE2_REQ, PORT2_RESP = 122, 119
NAMES_REQ = 110
NODE_TYPE_NORMAL, PROTO_TCP = 77, 0
HIGHEST, LOWEST = 6, 5
MAX_REQUEST = 512
REQUEST_TIMEOUT = 5.0
LOOKUP_TIMEOUT = 2.0


def alive_name(node: str) -> str:
    """The part of a node name that the mapper knows: ``name`` of ``name@host``."""
    return node.partition("@")[0]


def _alive2_req(alive: str, port: int) -> bytes:
    name = alive.encode()
    body = struct.pack(">BHBBHHH", ALIVE2_REQ, port, NODE_TYPE_NORMAL, PROTO_TCP, HIGHEST,
                       LOWEST, len(name)) + name + struct.pack(">H", 0)
    return struct.pack(">H", len(body)) + body


def _request(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


class PortMapper:
    """The mapper's table and connection handler (serve with ``asyncio.start_server``)."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self._owners: dict[str, asyncio.StreamWriter | None] = {}
        self._creation = 1

    def register_local(self, alive: str, port: int) -> None:
        self.ports[alive] = port
        self._owners[alive] = None

    def close(self) -> None:
        for writer in list(self._owners.values()):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                (size,) = struct.unpack(">H", await reader.readexactly(2))
                if not 0 < size <= MAX_REQUEST:
                    return
                body = await reader.readexactly(size)
            if body[0] == ALIVE2_REQ:
                await self._alive2(body, reader, writer)
            elif body[0] == PORT_PLEASE2_REQ:
                writer.write(self._port2_resp(body[1:].decode(errors="replace")))
            elif body[0] == NAMES_REQ:
                lines = "".join(f"name {n} at port {p}\n" for n, p in sorted(self.ports.items()))
                sock = writer.get_extra_info("sockname")
                writer.write(struct.pack(">I", sock[1] if sock else EPMD_PORT) + lines.encode())
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                OSError, struct.error, IndexError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _port2_resp(self, alive: str) -> bytes:
        port = self.ports.get(alive)
        if port is None:
            return bytes([PORT2_RESP, 1])
        name = alive.encode()
        return struct.pack(">BBHBBHHH", PORT2_RESP, 0, port, NODE_TYPE_NORMAL, PROTO_TCP,
                           HIGHEST, LOWEST, len(name)) + name + struct.pack(">H", 0)

    async def _alive2(self, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        _, port, _, _, _, _, nlen = struct.unpack(">BHBBHHH", body[:11])
        alive = body[11:11 + nlen].decode(errors="replace")
        if not alive or not _is_local(writer) or alive in self.ports:
            writer.write(bytes([ALIVE2_X_RESP, 1]) + struct.pack(">I", 0))
            return
        self._creation += 1
        self.ports[alive] = port
        self._owners[alive] = writer
        writer.write(bytes([ALIVE2_X_RESP, 0]) + struct.pack(">I", self._creation))
        log_event(log, "info", "node registered with the port mapper", alive=alive, port=port)
        try:
            while await reader.read(64):
                pass  # a registration lives as long as its connection
        finally:
            if self._owners.get(alive) is writer:
                del self.ports[alive], self._owners[alive]
                log_event(log, "info", "node unregistered from the port mapper", alive=alive)


def _is_local(writer: asyncio.StreamWriter) -> bool:
    peer = writer.get_extra_info("peername")
    sock = writer.get_extra_info("sockname")
    if not peer or not sock:
        return False
    try:
        addr = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    return addr.is_loopback or peer[0] == sock[0]


def _bind(host: str, port: int, family: int) -> socket.socket:
    family_, _, _, _, addr = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0]
    sock = socket.socket(family_, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def _connect(host: str, port: int, family: int
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(host, port, family=family),
                                  LOOKUP_TIMEOUT)


async def port_please(host: str, node: str, epmd_port: int = EPMD_PORT,
                      family: int = 0) -> int | None:
    """The distribution port ``node`` registered on ``host``'s mapper; None = not registered.

    Raises:
        ClusterError: the mapper cannot be reached or answers garbage (``LinkUnreachable``
            to the link code).
    """
    from mqttmesh.runtime.peer_link import LinkUnreachable
    try:
        reader, writer = await _connect(host, epmd_port, family)
    except (OSError, asyncio.TimeoutError):
        raise LinkUnreachable(f"no port mapper on {host}:{epmd_port}") from None
    try:
        writer.write(_request(bytes([PORT_PLEASE2_REQ]) + alive_name(node).encode()))
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            head = await reader.readexactly(2)
            if head[0] != PORT2_RESP:
                raise LinkUnreachable(f"the port mapper on {host}:{epmd_port} answered "
                                      "garbage")
            if head[1] != 0:
                return None
            (port,) = struct.unpack(">H", await reader.readexactly(2))
            return int(port)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        raise LinkUnreachable(f"no answer from the port mapper on {host}:{epmd_port}") \
            from None
    finally:
        writer.close()


async def names(host: str, epmd_port: int = EPMD_PORT, family: int = 0) -> dict[str, int]:
    """What the mapper on ``host`` knows: ``{alive: port}`` (as ``epmd -names``)."""
    reader, writer = await _connect(host, epmd_port, family)
    try:
        writer.write(_request(bytes([NAMES_REQ])))
        data = await asyncio.wait_for(reader.read(65536), LOOKUP_TIMEOUT)
        result: dict[str, int] = {}
        while chunk := await asyncio.wait_for(reader.read(65536), LOOKUP_TIMEOUT):
            data += chunk
        for line in data[4:].decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[0] == "name":
                result[parts[1]] = int(parts[4])
        return result
    finally:
        writer.close()


class EpmdAgent:
    """Keeps this node registered (see the module docstring); one task per node."""

    def __init__(self, node: str, host: str, dist_port: int, family: int = 0,
                 epmd_port: int = EPMD_PORT) -> None:
        self.node = node
        self.alive = alive_name(node)
        self.host = host
        self.dist_port = dist_port
        self.family = family
        self.epmd_port = epmd_port
        self.registered = asyncio.Event()
        self.serving = False
        self._last_error = ""

    async def wait_registered(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.registered.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                sock = _bind(self.host, self.epmd_port, self.family)
            except OSError:
                sock = None
            if sock is not None:
                await self._serve(sock)  # returns only when cancelled
            try:
                await self._register()
                backoff = 0.05
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    ClusterError) as exc:
                self.registered.clear()
                if str(exc) != self._last_error:
                    self._last_error = str(exc)
                    log_event(log, "warning", "cannot register with the port mapper",
                              node=self.node, mapper=f"{self.host}:{self.epmd_port}",
                              reason=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _serve(self, sock: socket.socket) -> None:
        mapper = PortMapper()
        mapper.register_local(self.alive, self.dist_port)
        server = await asyncio.start_server(mapper.handle, sock=sock)
        self.serving = True
        self.registered.set()
        log_event(log, "info", "port mapper started in this node", node=self.node,
                  mapper=f"{self.host}:{self.epmd_port}", port=self.dist_port)
        try:
            await asyncio.Future()
        finally:
            self.serving = False
            self.registered.clear()
            server.close()
            mapper.close()

    async def _register(self) -> None:
        reader, writer = await _connect(self.host, self.epmd_port, self.family)
        try:
            writer.write(_alive2_req(self.alive, self.dist_port))
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                head = await reader.readexactly(2)
                if head[0] not in (ALIVE2_RESP, ALIVE2_X_RESP):
                    raise ClusterError("the port mapper answered garbage")
                await reader.readexactly(4 if head[0] == ALIVE2_X_RESP else 2)
            if head[1] != 0:
                raise ClusterError(f"the port mapper refused the name {self.alive} "
                                   "(registered by another node?)")
            self.registered.set()
            self._last_error = ""
            log_event(log, "info", "registered with the port mapper", node=self.node,
                      mapper=f"{self.host}:{self.epmd_port}", port=self.dist_port)
            while await reader.read(64):
                pass
            self.registered.clear()
            log_event(log, "info", "port mapper connection lost: registering again",
                      node=self.node)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
