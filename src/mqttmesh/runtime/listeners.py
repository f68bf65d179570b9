"""MQTT listeners: tcp, ssl, ws and wss servers bound from configuration.

A ``ListenerSpec`` is the plain description of one configured listener (type, name, bind
address, limits, TLS files, WebSocket path); ``listener_specs(settings)`` extracts them from
``Settings``. A ``Listener`` binds one spec with ``loop.create_server`` and counts its
connections (``max_connections``); the per-connection work lives in ``client_link``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mqttmesh.errors import ConfigError, MqttMeshError
from mqttmesh.runtime.client_link import ClientLink, FlushScheduler, WsClientLink

__all__ = [
    "FdBudget", "raise_fd_limit", "FD_RESERVE",
    "LISTENER_TYPES",
    "ListenerSpec",
    "TlsOptions",
    "Listener",
    "ListenerBindError",
    "listener_specs",
    "parse_bind",
]

log = logging.getLogger("mqttmesh.runtime.listeners")

FD_RESERVE = 64
"""File descriptors kept free of client connections: cluster links, ctl, the HTTP API,
SQLite, log files. A connection that would eat into them is refused, with a warning."""


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (as EMQX's start script
    and nginx's ``worker_rlimit_nofile`` do); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int(soft if soft != resource.RLIM_INFINITY else 1_048_576)


class FdBudget:
    """Client connections open on all listeners, against the descriptor limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self._logged_at = -1e9

    def take(self, now: float, listener: str) -> bool:
        if self.open + FD_RESERVE < self.limit:
            self.open += 1
            return True
        self.refused += 1
        if now - self._logged_at >= 10.0:
            self._logged_at = now
            log.warning("listener %s: connection refused: %d client connections open, the "
                        "file descriptor limit (RLIMIT_NOFILE) is %d; raise it (ulimit -n) "
                        "for more (%d refused so far)", listener, self.open, self.limit,
                        self.refused)
        return False

    def give(self) -> None:
        self.open = max(0, self.open - 1)

LISTENER_TYPES = ("tcp", "ssl", "ws", "wss")
_DEFAULT_PORTS = {"tcp": 1883, "ssl": 8883, "ws": 8083, "wss": 8084}


class ListenerBindError(MqttMeshError, OSError):
    """A listener could not bind its address (port in use, address not available).

    Also an ``OSError`` (with the original errno) so callers that treat start-up socket
    errors as "cannot start" (the CLI does) print its one-line message.
    """

    def __init__(self, listener: str, address: str, reason: str, errno_: int = 0) -> None:
        OSError.__init__(self, f"listener {listener} cannot bind {address}: {reason}")
        self.errno = errno_ or None
        self.listener = listener
        self.address = address
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TlsOptions:
    certfile: str | None = None
    keyfile: str | None = None
    cacertfile: str | None = None
    verify: str = "verify_none"  # verify_none | verify_peer
    fail_if_no_peer_cert: bool = False


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    type: str
    name: str
    host: str
    port: int
    enable: bool = True
    max_connections: int | None = None
    tls: TlsOptions | None = None
    max_conn_rate: float | None = None      # accepted connections per second, None = no limit
    ws_path: str = "/mqtt"

    @property
    def id(self) -> str:
        """EMQX-style listener id, e.g. ``tcp:default``."""
        return f"{self.type}:{self.name}"

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(value: object, default_port: int, key: str = "bind") -> tuple[str, int]:
    """``"0.0.0.0:1883"``, ``"[::]:1883"``, ``1883``, ``("h", p)`` -> ``(host, port)``."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]), int(value[1])
    if isinstance(value, int) and not isinstance(value, bool):
        return "0.0.0.0", value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.isdigit():
                return "0.0.0.0", int(text)
            if text.startswith("["):
                host, _, port = text[1:].partition("]:")
                return host, int(port)
            host, sep, port = text.rpartition(":")
            if sep and host:
                return host, int(port)
        except ValueError:
            pass
        raise ConfigError(key, value, "expected HOST:PORT")
    bind_host = getattr(value, "host", None)
    bind_port = getattr(value, "port", None)
    if bind_host is not None and bind_port is not None:
        return str(bind_host), int(bind_port)
    if value is None:
        return "0.0.0.0", default_port
    raise ConfigError(key, value, "expected HOST:PORT")


def _get(obj: object, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _tls_options(raw: object) -> TlsOptions | None:
    if raw is None:
        return None
    verify = _get(raw, "verify", "verify_none")
    if isinstance(verify, bool):
        verify = "verify_peer" if verify else "verify_none"
    return TlsOptions(
        certfile=_get(raw, "certfile") or None,
        keyfile=_get(raw, "keyfile") or None,
        cacertfile=_get(raw, "cacertfile") or None,
        verify=str(verify or "verify_none"),
        fail_if_no_peer_cert=bool(_get(raw, "fail_if_no_peer_cert", False)),
    )


def _max_connections(value: object) -> int | None:
    if value is None or value == "infinity" or isinstance(value, bool):
        return None
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _rate(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _spec(ltype: str, name: str, raw: object) -> ListenerSpec:
    key = f"listeners.{ltype}.{name}"
    host, port = parse_bind(_get(raw, "bind"), _DEFAULT_PORTS.get(ltype, 0), f"{key}.bind")
    tls = _tls_options(_get(raw, "ssl_options")) if ltype in ("ssl", "wss") else None
    websocket = _get(raw, "websocket")
    ws_path = _get(websocket, "mqtt_path") if websocket is not None else None
    ws_path = ws_path or _get(raw, "mqtt_path") or "/mqtt"
    return ListenerSpec(
        type=ltype,
        name=name,
        host=host,
        port=port,
        enable=bool(_get(raw, "enable", True)),
        max_connections=_max_connections(_get(raw, "max_connections")),
        max_conn_rate=_rate(_get(raw, "max_conn_rate")),
        tls=tls,
        ws_path=str(ws_path),
    )


def _iter_raw(listeners: object) -> Iterator[tuple[str, str, object]]:
    """Yields (type, name, raw) from the shapes Settings may use for ``listeners``."""
    if isinstance(listeners, (list, tuple)):
        for item in listeners:
            ltype = _get(item, "type")
            yield str(ltype), str(_get(item, "name", "default")), item
        return
    for ltype in LISTENER_TYPES:
        group = _get(listeners, ltype)
        if group is None:
            continue
        if isinstance(group, Mapping):
            for name, raw in group.items():
                yield ltype, str(name), raw
        elif isinstance(group, (list, tuple)):
            for raw in group:
                yield ltype, str(_get(raw, "name", "default")), raw
        else:  # a single listener object
            yield ltype, str(_get(group, "name", "default")), group


def listener_specs(settings: object) -> list[ListenerSpec]:
    """Every configured MQTT listener (enabled or not), from ``settings.listeners``."""
    listeners = _get(settings, "listeners")
    if listeners is None:
        return [ListenerSpec("tcp", "default", "0.0.0.0", 1883)]
    specs = [_spec(t, n, raw) for t, n, raw in _iter_raw(listeners)]
    return [s for s in specs if s.type in LISTENER_TYPES]


def make_ssl_context(spec: ListenerSpec) -> ssl.SSLContext:
    tls = spec.tls or TlsOptions()
    key = f"listeners.{spec.type}.{spec.name}.ssl_options"
    if not tls.certfile:
        raise ConfigError(f"{key}.certfile", tls.certfile, "a TLS listener needs a certificate")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(tls.certfile, tls.keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{key}.certfile", tls.certfile, f"cannot load: {exc}") from exc
    if tls.cacertfile:
        try:
            ctx.load_verify_locations(cafile=tls.cacertfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{key}.cacertfile", tls.cacertfile, f"cannot load: {exc}") from exc
    if tls.verify == "verify_peer":
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Listener:
    """One bound server socket; creates a link per accepted connection."""

    def __init__(
        self,
        spec: ListenerSpec,
        broker: Any,
        loop: asyncio.AbstractEventLoop,
        scheduler: FlushScheduler,
    ) -> None:
        self.spec = spec
        self.name = spec.id
        self.broker = broker
        self.loop = loop
        self.scheduler = scheduler
        self.ws_path = spec.ws_path
        config = getattr(broker, "config", None)
        self.idle_timeout = float(getattr(config, "idle_timeout", 15.0) or 15.0)
        """Seconds a connection may take for its TLS / WebSocket handshake."""
        self.links: set[ClientLink] = set()
        self.refused = 0
        self.refused_rate = 0
        """Connections refused by ``max_conn_rate`` (also counted in ``refused``)."""
        rate = spec.max_conn_rate
        self._tokens = max(rate, 1.0) if rate else 0.0
        self._tokens_at = loop.time()
        self._rate_logged_at = -1e9
        self._idle = asyncio.Event()
        self._idle.set()
        self._server: asyncio.Server | None = None
        self.fds: FdBudget | None = None  # shared by the node's listeners (Node sets it)

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from spec.port when that was 0)."""
        if self._server is None or not self._server.sockets:
            return self.spec.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        spec = self.spec
        ctx = make_ssl_context(spec) if spec.type in ("ssl", "wss") else None
        link_class = WsClientLink if spec.type in ("ws", "wss") else ClientLink
        try:
            self._server = await self.loop.create_server(
                lambda: link_class(self),
                host=spec.host or None,
                port=spec.port,
                ssl=ctx,
                reuse_address=True,
                backlog=1024,
                ssl_handshake_timeout=self.idle_timeout if ctx is not None else None,
            )
        except OSError as exc:
            reason = {
                errno.EADDRINUSE: "address already in use",
                errno.EADDRNOTAVAIL: "address not available",
                errno.EACCES: "permission denied",
            }.get(exc.errno or 0, exc.strerror or str(exc))
            raise ListenerBindError(spec.id, spec.address, reason, exc.errno or 0) from exc

    def admit(self, link: ClientLink) -> bool:
        limit = self.spec.max_connections
        if limit is not None and len(self.links) >= limit:
            self.refused += 1
            return False
        if self.spec.max_conn_rate and not self._take_token():
            self.refused += 1
            self.refused_rate += 1
            return False
        if self.fds is not None and not self.fds.take(self.loop.time(), self.name):
            self.refused += 1
            return False
        self.links.add(link)
        self._idle.clear()
        return True

    def _take_token(self) -> bool:
        """Token bucket for ``max_conn_rate`` (burst = one second's worth): EMQX's limiter
        closes connections beyond the rate; a refusal is logged at most every 10 s."""
        rate = self.spec.max_conn_rate or 0.0
        now = self.loop.time()
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        if now - self._rate_logged_at >= 10.0:
            self._rate_logged_at = now
            log.warning("listener %s: connection refused, above max_conn_rate %g/s "
                        "(%d refused so far)", self.name, rate, self.refused_rate + 1)
        return False

    def release(self, link: ClientLink) -> None:
        if link in self.links and self.fds is not None:
            self.fds.give()
        self.links.discard(link)
        if not self.links:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no connection is open on this listener."""
        await self._idle.wait()

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except (asyncio.TimeoutError, OSError):
                pass

    def __repr__(self) -> str:
        return f"<Listener {self.name} {self.spec.address}>"


def describe(listeners: Iterable[Listener]) -> str:
    return ", ".join(
        f"{lst.name}@{lst.spec.host}:{lst.bound_port}" for lst in listeners
    )
