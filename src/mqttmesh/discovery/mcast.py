"""`mcast` strategy: announce this node on a UDP multicast group and collect the others.

Every `register()` (each discovery round) sends a signed announcement (`mcast_wire`) to
`cluster.mcast.addr` on every port of `cluster.mcast.ports`; a listener bound to the group
on the first of those ports that it can bind collects announcers. When it hears a node it
did not know, it answers with its own announcement at once, so a newcomer learns of the
members without waiting a round. `discover()` returns the announcers heard within
`max_age` seconds. Announcements with another cookie, a stale timestamp or a replayed
nonce are dropped, and so are nodes of another cluster name; each reason is logged once.

Loopback: with `iface = 127.0.0.1` and `loop = true`, Linux delivers the group's datagrams
between processes on this host (IP_MULTICAST_IF 127.0.0.1 + IP_MULTICAST_LOOP, membership
on 127.0.0.1): that is how the tests run, no network namespace needed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
import time

from mqttmesh.discovery.base import BaseStrategy, McastConfig, RejectionLog
from mqttmesh.discovery.mcast_wire import AnnouncementRejected, ReplayGuard, decode_announcement, encode_announcement
from mqttmesh.errors import DiscoveryError

__all__ = ["McastStrategy"]

log = logging.getLogger("mqttmesh.discovery.mcast")


class McastStrategy(BaseStrategy):
    """UDP multicast discovery (`cluster.mcast.*`), authenticated with the cookie."""

    name = "mcast"

    def __init__(self, config: McastConfig, node_name: str, cookie: str, cluster_name: str) -> None:
        if not config.ports:
            raise DiscoveryError("cluster.mcast.ports lists no port")
        self._config = config
        self.node_name = node_name
        self._cookie = cookie
        self._cluster_name = cluster_name
        self._guard = ReplayGuard()
        self._heard: dict[str, float] = {}       # node -> monotonic time last heard
        self._rejections = RejectionLog(log)
        self._listener: asyncio.DatagramTransport | None = None
        self._sender: asyncio.DatagramTransport | None = None
        self._port: int | None = None
        self._announcing = True

    @property
    def port(self) -> int | None:
        """The UDP port the listener is bound to, once open."""
        return self._port

    async def register(self) -> None:
        await self._open()
        self._announcing = True
        self._announce()

    async def discover(self) -> list[str]:
        await self._open()
        horizon = time.monotonic() - self._config.max_age
        self._heard = {node: at for node, at in self._heard.items() if at >= horizon}
        return sorted(node for node in self._heard if node != self.node_name)

    async def unregister(self) -> None:
        self._announcing = False

    async def close(self) -> None:
        for transport in (self._listener, self._sender):
            if transport is not None:
                transport.close()
        self._listener = self._sender = None

    # -- I/O ------------------------------------------------------------------

    async def _open(self) -> None:
        if self._listener is not None:
            return
        loop = asyncio.get_running_loop()
        listen_sock = self._listen_socket()
        send_sock = self._send_socket()
        self._listener, _ = await loop.create_datagram_endpoint(lambda: _Receiver(self), sock=listen_sock)
        self._sender, _ = await loop.create_datagram_endpoint(lambda: _Sender(self._config), sock=send_sock)
        log.info("listening for cluster announcements on %s:%s (iface %s)", self._config.addr, self._port, self._config.iface)

    def _listen_socket(self) -> socket.socket:
        config = self._config
        errors = []
        for port in config.ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if hasattr(socket, "SO_REUSEPORT"):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((config.addr, port))
                membership = struct.pack("4s4s", socket.inet_aton(config.addr), socket.inet_aton(config.iface))
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                errors.append(f"{port}: {exc.strerror or exc}")
                continue
            self._port = port
            return sock
        raise DiscoveryError(f"cannot listen on multicast group {config.addr} ({'; '.join(errors)})")

    def _send_socket(self) -> socket.socket:
        config = self._config
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(config.iface))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, config.ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if config.loop else 0)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise DiscoveryError(f"cannot send to multicast group {config.addr} via {config.iface}: {exc}") from exc
        return sock

    def _announce(self) -> None:
        if self._sender is None or not self._announcing:
            return
        datagram = encode_announcement(self.node_name, self._cluster_name, self._cookie, time.time(), secrets.token_hex(12))
        for port in self._config.ports:
            self._sender.sendto(datagram, (self._config.addr, port))

    def _received(self, data: bytes, source: tuple[str, int]) -> None:
        try:
            announcement = decode_announcement(data, self._cookie, time.time(), self._guard)
        except AnnouncementRejected as exc:
            if not exc.foreign:
                self._rejections.reject(f"multicast announcement from {source[0]}:{source[1]}", exc.reason)
            return
        node = announcement.node
        if node == self.node_name:
            return
        if announcement.cluster != self._cluster_name:
            self._rejections.reject(node, f"it announces cluster {announcement.cluster!r}, this node is in cluster {self._cluster_name!r}")
            return
        self._rejections.accept(node)
        is_new = node not in self._heard
        self._heard[node] = time.monotonic()
        if is_new:
            self._announce()     # once per newcomer (and only cookie holders get this far)


class _Sender(asyncio.DatagramProtocol):
    """Says once that announcements cannot be sent (no route for the group, say)."""

    def __init__(self, config: McastConfig) -> None:
        self._config = config
        self._said = False

    def error_received(self, exc: Exception) -> None:
        if not self._said:
            self._said = True
            log.warning("cannot send multicast announcements to %s via %s: %s", self._config.addr, self._config.iface, exc)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, owner: McastStrategy) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._owner._received(data, addr)
