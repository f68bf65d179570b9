"""How cluster links reach each other: address family, TLS and port lookup (``proto_dist``).

Theory of operation
-------------------
One ``DistTransport`` per node (and per ``ctl`` run), built from ``Settings`` by
``DistTransport.from_settings``. It decides, for both cluster ports (distribution and RPC):

* **family**: ``inet_tcp`` = IPv4 only, ``inet6_tcp`` = IPv6 only (node names such as
  ``mqttmesh1@::1``, Erlang's spelling, no brackets), ``inet_tls`` = whatever the host of the
  node name resolves to. A node name whose host is of the wrong family is a start-up error.
* **TLS** (``inet_tls``): every link, both ports and ``ctl``, is TLS first and the cookie
  handshake runs inside it. ``verify_peer`` (the default) is mutual TLS: each side presents
  ``certfile`` and requires the other's certificate to chain to ``cacertfile``. The name
  checked is the host of the peer's *node name*: the client checks the server's certificate
  against the host of the node it dials (or ``server_name_indication`` when set; ``disable``
  turns the name check off), the server checks the client's certificate against the host of
  the node name the client claims in HELLO (refused before the cookie challenge). TLS
  handshake runs on the raw accepted socket before any byte is read in clear (``serve``),
  within the 5 s handshake deadline; failures are refusals logged with the peer address
  (``HandshakeError`` on the dialling side), not "unreachable".
* **ports**: by default the SPEC §3 rule (4370/5370 + offset). With ``WITH_EPMD=1`` the
  distribution port is the first free one in ``node.dist_listen_min..max`` and is found by
  peers and ``ctl`` through the port mapper on 4369 of the peer's host (``runtime.epmd``);
  the RPC port keeps the 5370 + offset rule (EMQX's stateless ``rpc.port_discovery``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Mapping
from typing import Any

from mqttmesh.cluster import ClientHandshake, PeerInfo, ServerHandshake
from mqttmesh.config import dist_port, node_host, rpc_port
from mqttmesh.errors import ClusterError, ConfigError
from mqttmesh.runtime import epmd
from mqttmesh.runtime.peer_link import (
    HANDSHAKE_TIMEOUT,
    LinkUnreachable,
    PeerLink,
    accept_link,
    open_link,
)

__all__ = ["DistTransport", "epmd_enabled", "format_address", "cert_matches_host"]

DIST, RPC = "dist", "rpc"


def epmd_enabled(env: Mapping[str, str]) -> bool:
    """``WITH_EPMD=1`` (also true/yes/on) turns epmd mode on."""
    return env.get("WITH_EPMD", "").strip().lower() in ("1", "true", "yes", "on")


def format_address(host: str, port: int) -> str:
    """``127.0.0.1:4370`` or ``[::1]:4370``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def cert_matches_host(cert: Mapping[str, Any] | None, host: str) -> bool:
    """Whether a peer certificate (``SSLObject.getpeercert()``) names ``host``: an IP SAN
    for an IP host, a DNS SAN (``*.`` wildcard in the leftmost label) for a name; the CN is
    used only when the certificate has no SAN (as browsers did)."""
    if not cert:
        return False
    ip = _is_ip(host)
    sans = cert.get("subjectAltName", ())
    dns = [v for k, v in sans if k == "DNS"]
    ips = [v for k, v in sans if k == "IP Address"]
    if ip is not None:
        return any(_is_ip(v.strip()) == ip for v in ips)
    if not sans:
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    dns.append(value)
    host = host.lower().rstrip(".")
    for pattern in dns:
        pattern = pattern.lower().rstrip(".")
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host \
                and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False


class DistTransport:
    """Family, TLS contexts and port lookup for cluster links (see the module docstring)."""

    def __init__(self, proto: str = "inet_tcp", *, server_ctx: ssl.SSLContext | None = None,
                 client_ctx: ssl.SSLContext | None = None, verify_peer: bool = False,
                 server_name: str | None = None, use_epmd: bool = False,
                 epmd_port: int = epmd.EPMD_PORT, listen_range: tuple[int, int] = (6369, 6369)
                 ) -> None:
        self.proto = proto
        self.family = {"inet_tcp": socket.AF_INET, "inet6_tcp": socket.AF_INET6}.get(
            proto, socket.AF_UNSPEC)
        self.server_ctx = server_ctx
        self.client_ctx = client_ctx
        self.verify_peer = verify_peer
        self.server_name = server_name   # None = the peer's host; "" = no name check
        self.use_epmd = use_epmd
        self.epmd_port = epmd_port
        self.listen_range = listen_range

    @property
    def tls(self) -> bool:
        return self.client_ctx is not None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str] | None = None
                      ) -> DistTransport:
        """Raises ConfigError naming the key: unreadable certificate files, a node name whose
        host does not fit ``cluster.proto_dist``."""
        env = os.environ if env is None else env
        cluster = settings.cluster
        proto = getattr(cluster, "proto_dist", "inet_tcp")
        host = node_host(settings.node.name)
        ip = _is_ip(host)
        if proto == "inet_tcp" and ip is not None and ip.version == 6:
            raise ConfigError("cluster.proto_dist", proto, f"the node name's host {host} is "
                              "IPv6: set cluster.proto_dist = inet6_tcp")
        if proto == "inet6_tcp" and ip is not None and ip.version == 4:
            raise ConfigError("cluster.proto_dist", proto, f"the node name's host {host} is "
                              "IPv4: inet6_tcp needs an IPv6 host (e.g. name@::1)")
        kwargs: dict[str, Any] = {}
        if proto == "inet_tls":
            kwargs = _tls_contexts(cluster.ssl_dist)
        port_text = env.get("ERL_EPMD_PORT", "").strip()
        return cls(proto, use_epmd=epmd_enabled(env),
                   epmd_port=int(port_text) if port_text.isdigit() else epmd.EPMD_PORT,
                   listen_range=(settings.node.dist_listen_min, settings.node.dist_listen_max),
                   **kwargs)

    # -- listening -------------------------------------------------------------------------
    def bind(self, host: str, port: int, what: str) -> socket.socket:
        """A listening non-blocking socket on ``host:port`` of this transport's family.

        Raises:
            ClusterError: cannot resolve or bind (one line naming the port).
        """
        try:
            infos = socket.getaddrinfo(host, port, self.family, socket.SOCK_STREAM)
        except OSError as exc:
            raise ClusterError(f"cannot resolve the host of this node's name {host} "
                               f"({self.proto}): {exc}") from None
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            reason = (exc.strerror or str(exc)).lower()
            raise ClusterError(f"cluster {what} port {format_address(host, port)} cannot be "
                               f"bound: {reason}") from None
        sock.setblocking(False)
        return sock

    def bind_dist(self, name: str) -> tuple[socket.socket, int]:
        """The distribution socket and port: 4370 + offset, or in epmd mode the first free
        port of ``node.dist_listen_min..max``."""
        host = node_host(name)
        if not self.use_epmd:
            port = dist_port(name)
            return self.bind(host, port, "distribution"), port
        lo, hi = self.listen_range
        for port in range(lo, hi + 1):
            try:
                return self.bind(host, port, "distribution"), port
            except ClusterError:
                continue
        raise ClusterError(f"no free distribution port on {host} in node.dist_listen_min.."
                           f"node.dist_listen_max ({lo}..{hi}) (epmd mode)")

    async def serve(self, callback: Any, sock: socket.socket,
                    on_refused: Any = None) -> Any:
        """Serve ``callback(reader, writer)`` on ``sock`` (an object with ``close()``).

        With TLS the server side handshake runs before ``callback`` (on the raw accepted
        socket: no byte can be read in clear first), within the link handshake deadline;
        a failure calls ``on_refused(address, reason)`` and closes the socket.
        """
        if self.server_ctx is None:
            return await asyncio.start_server(callback, sock=sock)
        server = _TlsServer(self.server_ctx, sock, callback, on_refused)
        server.start()
        return server

    # -- connecting ------------------------------------------------------------------------
    async def resolve(self, target: str, which: str = DIST) -> tuple[str, int]:
        """``(host, port)`` of ``target``'s distribution or RPC port.

        Raises:
            LinkUnreachable: epmd mode and the mapper does not know ``target``.
        """
        host = node_host(target)
        if which == RPC:
            return host, rpc_port(target)
        if not self.use_epmd:
            return host, dist_port(target)
        port = await epmd.port_please(host, target, self.epmd_port, self.family)
        if port is None:
            raise LinkUnreachable(f"{target} is not registered with the port mapper on "
                                  f"{format_address(host, self.epmd_port)}")
        return host, port

    def address(self, target: str, which: str = DIST) -> str:
        """For logs: where ``target`` is dialled (``host:epmd`` in epmd mode)."""
        host = node_host(target)
        if which == DIST and self.use_epmd:
            return f"{format_address(host, self.epmd_port)} (epmd)"
        return format_address(host, rpc_port(target) if which == RPC else dist_port(target))

    async def open_link(self, target: str, which: str, hs: ClientHandshake,
                        local_host: str | None, timeout: float = HANDSHAKE_TIMEOUT
                        ) -> PeerLink:
        """Connect to ``target``'s port and authenticate (TLS first with ``inet_tls``).

        Raises:
            LinkUnreachable, HandshakeError: as ``peer_link.open_link``.
        """
        host, port = await self.resolve(target, which)
        secure = None
        if self.client_ctx is not None:
            ctx = self.client_ctx
            name = host if self.server_name is None else (self.server_name or None)

            async def secure(writer: asyncio.StreamWriter) -> None:
                await writer.start_tls(ctx, server_hostname=name or host)

        return await open_link(host, port, hs, local_host, timeout, family=self.family,
                               secure=secure)

    async def accept_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          hs: ServerHandshake, timeout: float = HANDSHAKE_TIMEOUT) -> PeerLink:
        """Authenticate a connection accepted by ``serve`` (with ``inet_tls`` TLS is already
        up: the peer certificate's name is checked once HELLO says who the peer claims to
        be, before the cookie challenge)."""
        if self.server_ctx is None:
            return await accept_link(reader, writer, hs, timeout)

        def check(claimed: PeerInfo) -> str | None:
            if not self.verify_peer or self.server_name == "":
                return None
            ssl_object = writer.get_extra_info("ssl_object")
            cert = ssl_object.getpeercert() if ssl_object is not None else None
            if self.server_name:
                expected = self.server_name
            elif "@" in claimed.name:
                expected = node_host(claimed.name)
            else:
                return "malformed node name"
            if not cert_matches_host(cert, expected):
                return (f"TLS certificate does not name {expected}, the host of the "
                        f"node name the peer claims ({claimed.name[:100]})")
            return None

        return await accept_link(reader, writer, hs, timeout, check=check)


class _TlsServer:
    """Accepts raw sockets and runs the server side of TLS on each before the callback."""

    def __init__(self, ctx: ssl.SSLContext, sock: socket.socket, callback: Any,
                 on_refused: Any) -> None:
        self.ctx = ctx
        self.sock = sock
        self.callback = callback
        self.on_refused = on_refused
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._spawn(self._accept_loop())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.sock.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self.sock)
            except OSError:
                await asyncio.sleep(0.1)  # EMFILE and the like: do not spin
                continue
            self._spawn(self._handle(conn, addr))

    async def _handle(self, conn: socket.socket, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, sock=conn, ssl=self.ctx,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            conn.close()
            if self.on_refused is not None:
                if isinstance(exc, ssl.SSLError):
                    reason = str(getattr(exc, "verify_message", "") or exc.reason or exc)
                else:
                    reason = str(exc) or type(exc).__name__
                address = format_address(addr[0], addr[1]) if isinstance(addr, tuple) else "?"
                self.on_refused(address, f"TLS handshake failed: {reason.lower()}")
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self.callback(reader, writer)


def _tls_contexts(ssl_dist: Any) -> dict[str, Any]:
    """Server and client contexts from ``cluster.ssl_dist``; ConfigError naming the key."""
    certfile, keyfile, cacertfile = ssl_dist.certfile, ssl_dist.keyfile, ssl_dist.cacertfile
    verify_peer = ssl_dist.verify != "verify_none"
    for key, path, needed in (("certfile", certfile, True), ("keyfile", keyfile, False),
                              ("cacertfile", cacertfile, verify_peer)):
        if not path:
            if needed:
                raise ConfigError(f"cluster.ssl_dist.{key}", path,
                                  "required with cluster.proto_dist = inet_tls")
            continue
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise ConfigError(f"cluster.ssl_dist.{key}", path, "no such readable file")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for ctx in (server, client):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(certfile, keyfile or None)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("cluster.ssl_dist.certfile", certfile,
                              f"cannot load the certificate and key: {exc}") from None
        if cacertfile:
            try:
                ctx.load_verify_locations(cacertfile)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError("cluster.ssl_dist.cacertfile", cacertfile,
                                  f"cannot load CA certificates: {exc}") from None
    sni = ssl_dist.server_name_indication
    server_name = None if not sni else ("" if sni == "disable" else sni)
    if verify_peer:
        server.verify_mode = ssl.CERT_REQUIRED
        client.verify_mode = ssl.CERT_REQUIRED
        client.check_hostname = server_name != ""
    else:
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        server.verify_mode = ssl.CERT_NONE
    return {"server_ctx": server, "client_ctx": client, "verify_peer": verify_peer,
            "server_name": server_name}
