"""Node: the composition root of one mqttmesh process (broker, listeners, timers, $SYS).

Theory of operation
-------------------
``await Node(settings).run()`` builds everything from ``Settings`` and runs until
``node.stop()`` (the CLI calls it on SIGTERM / Ctrl-C):

1. ``BrokerConfig`` from ``settings.node.name`` + ``settings.mqtt.*``; ``Broker(config,
   cluster=hooks)`` where ``hooks`` come from the cluster service (None when standalone).
2. Every enabled listener is bound. A listener that cannot bind raises
   ``ListenerBindError`` ("listener tcp:default cannot bind 0.0.0.0:1883: address already in
   use") after closing the ones already bound; nothing else has started, no pid file.
3. In the Node's ``TaskGroup``: the broker timer (``broker.tick(now)`` at the deadline it
   returns, at least once a second), the ``$SYS`` publisher, and the cluster service.
4. ``<data_dir>/mqttmesh.pid`` is written (contract with ``mqttmesh start``: it appears once
   every listener is bound) and "node started" is logged with the listeners.

``stop()`` is synchronous and safe from a signal handler; it returns a future that is done
when ``run()`` has finished, so callers may await it or not. Shutdown: stop accepting, close
every client (the broker sends MQTT 5 clients DISCONNECT 0x8B "server shutting down"),
wait briefly for the sockets to go, stop the tasks, remove the pid file, return.

Cluster plug-in point: ``Node(settings, cluster=service)``, or ``Node.cluster_factory`` (a
callable ``settings -> ClusterService | None``, None by default = standalone). A
``ClusterService`` provides ``hooks`` (the broker's ``ClusterHooks``), ``async start(broker,
task_group)`` (bind peer ports, spawn its tasks in the Node's TaskGroup) and ``async
stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from mqttmesh import __version__
from mqttmesh.logs import log_event
from mqttmesh.runtime.client_link import FlushScheduler
from mqttmesh.runtime.listeners import (
    FdBudget,
    Listener,
    ListenerBindError,
    describe,
    listener_specs,
    raise_fd_limit,
)
from mqttmesh.runtime.sys_topics import SysPublisher

__all__ = ["Node", "ClusterService", "build_broker_config", "build_access"]

log = logging.getLogger("mqttmesh.node")

TICK_MAX_INTERVAL = 1.0
"""The broker timer runs at least this often (seconds)."""
SHUTDOWN_GRACE = 2.0
"""How long stop() waits for client sockets to close before aborting them."""
OVERFLOW_REPORT_INTERVAL = 10.0
"""Seconds between two "message queue full" lines (``Node._report_overflow``)."""


class ClusterService(Protocol):
    """What the cluster layer plugs into a Node (see the module docstring)."""

    hooks: Any  # broker.ClusterHooks

    async def start(self, broker: Any, task_group: asyncio.TaskGroup) -> None: ...

    async def stop(self) -> None: ...


# For a config field that is None in Settings ("infinity") but not optional in BrokerConfig.
_UNLIMITED = {"max_awaiting_rel": 65535}


def build_broker_config(settings: Any) -> Any:
    """BrokerConfig from Settings: node name + every ``mqtt.*`` key BrokerConfig knows."""
    from mqttmesh.broker import BrokerConfig

    values: dict[str, Any] = {}
    mqtt = getattr(settings, "mqtt", None)
    for f in dataclasses.fields(BrokerConfig):
        if f.name == "node_name":
            values["node_name"] = settings.node.name
            continue
        if mqtt is None or not hasattr(mqtt, f.name):
            continue
        value = getattr(mqtt, f.name)
        if value is None and "None" not in str(f.type):
            value = _UNLIMITED.get(f.name, 2**31 - 1)
        values[f.name] = value
    return BrokerConfig(**values)


DEFAULT_ACL_PATH = "etc/acl.conf"


def build_access(settings: Any) -> tuple[Any, Any, Any]:
    """(user store, authenticator, authorizer) from ``settings.authentication`` /
    ``settings.authorization`` as docs/access.md describes; (None, None, None) for the parts
    Settings does not have (every CONNECT accepted, everything allowed: today's behaviour).

    Raises:
        ConfigError: the ACL file does not parse (names the key, the message has file:line).
        UserStoreError: the user file cannot be read.
    """
    from mqttmesh import access
    from mqttmesh.errors import ConfigError

    users = authenticator = authorizer = None
    authn = getattr(settings, "authentication", None)
    if authn is not None:
        # opened even with authentication off, so users can be managed before enabling it
        hashing = getattr(authn, "password_hash", None)
        iterations = getattr(hashing, "iterations", None) or access.DEFAULT_ITERATIONS
        users = access.UserStore.open(
            os.path.join(settings.node.data_dir, "authn_users.json"), iterations=iterations
        )
    if authn is not None and getattr(authn, "enable", False):
        authenticator = access.Authenticator(
            users, allow_anonymous=bool(getattr(authn, "allow_anonymous", True))
        )
    authz = getattr(settings, "authorization", None)
    if authz is not None:
        source = getattr(getattr(authz, "sources", None), "file", None)
        acl = None
        if source is not None and getattr(source, "enable", True):
            path = str(getattr(source, "path", DEFAULT_ACL_PATH))
            if os.path.exists(path) or path != DEFAULT_ACL_PATH:
                try:
                    acl = access.load_acl(path)
                except access.AclParseError as exc:
                    raise ConfigError("authorization.sources.file.path", path, str(exc)) from exc
                except OSError as exc:
                    raise ConfigError(
                        "authorization.sources.file.path", path, exc.strerror or str(exc)
                    ) from exc
        no_match = str(getattr(authz, "no_match", "allow"))
        if acl is None and no_match == "allow":
            # nothing to decide: keep the publish path free of authorization calls
            return users, authenticator, None
        cache = getattr(authz, "cache", None)
        cache_size = getattr(cache, "max_size", 32) if getattr(cache, "enable", True) else 0
        authorizer = access.Authorizer(
            acl,
            no_match=no_match,
            deny_action=getattr(authz, "deny_action", "ignore"),
            cache_max_size=cache_size,
        )
    return users, authenticator, authorizer


class Node:
    """One mqttmesh node. ``await run()`` until ``stop()``."""

    cluster_factory: ClassVar[Callable[[Any], ClusterService | None] | None] = None
    """Where the cluster service plugs in: settings -> ClusterService (None: standalone)."""
    http_app_factory: ClassVar[Callable[[Any], Any] | None] = None
    """Where the HTTP API plugs in: node -> request handler (``api.make_app``), served on
    ``dashboard.listeners.http`` by ``runtime.http_server`` (None: no HTTP listener)."""

    def __init__(self, settings: Any, cluster: ClusterService | None = None) -> None:
        self.settings = settings
        self.cluster: ClusterService | None = cluster
        self.broker: Any = None
        self.users: Any = None  # access.UserStore when authentication is enabled (for mgmt)
        self.authorizer: Any = None  # access.Authorizer (mgmt: reload)
        self.listeners: list[Listener] = []
        self.fds: FdBudget | None = None  # client connections against RLIMIT_NOFILE
        self.http: Any = None  # runtime.http_server.HttpServer (dashboard listener)
        self.scheduler: FlushScheduler | None = None
        self.started_at: float | None = None  # loop.time() once running
        self._stop_requested = False
        self._stop_event: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = asyncio.Event()

    # -- public ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.settings.node.name)

    @property
    def pid_file(self) -> str:
        return os.path.join(self.settings.node.data_dir, "mqttmesh.pid")

    def stop(self) -> asyncio.Future[None] | None:
        """Ask the node to stop (idempotent, safe from a signal handler).

        Returns a future done once ``run()`` has returned (None when called outside an
        event loop before ``run()``); awaiting it is optional.
        """
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()
        if self._done is None:
            loop = self._loop or _running_loop()
            if loop is None:
                return None
            self._done = loop.create_future()
            if self._loop is None:
                self._done.set_result(None)  # run() not started: nothing to wait for
        return self._done

    async def wait_started(self) -> None:
        """Return once the listeners are bound and the pid file written."""
        await self._started.wait()

    async def run(self) -> None:
        """Run the node until ``stop()``. Raises ListenerBindError if a port is taken."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop_event = asyncio.Event()
        if self._done is None:
            self._done = loop.create_future()
        if self._stop_requested:
            self._stop_event.set()
        try:
            await self._run(loop)
        finally:
            if not self._done.done():
                self._done.set_result(None)

    # -- internals -------------------------------------------------------------------------
    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        from mqttmesh.broker import Broker

        if self.cluster is None and Node.cluster_factory is not None:
            self.cluster = Node.cluster_factory(self.settings)
        hooks = self.cluster.hooks if self.cluster is not None else None
        self.users, authenticator, self.authorizer = build_access(self.settings)
        access_kwargs: dict[str, Any] = {}
        if authenticator is not None:
            access_kwargs["authenticator"] = authenticator
        if self.authorizer is not None:
            access_kwargs["authorizer"] = self.authorizer
        self.broker = Broker(build_broker_config(self.settings), cluster=hooks, **access_kwargs)
        self.scheduler = FlushScheduler(loop)
        await self._bind_listeners(loop)
        assert self._stop_event is not None
        try:
            async with asyncio.TaskGroup() as tg:
                timer = tg.create_task(self._timer_loop(loop), name="broker-timer")
                overflow_task = tg.create_task(self._report_overflow(),
                                               name="queue-overflow-report")
                sys_task = None
                sys_settings = getattr(self.settings, "sys_topics", None)
                interval = getattr(sys_settings, "sys_msg_interval", None)
                heartbeat = getattr(sys_settings, "sys_heartbeat_interval", None)
                self.started_at = loop.time()
                if interval or heartbeat:
                    publisher = SysPublisher(self, interval, heartbeat)
                    sys_task = tg.create_task(publisher.run(loop), name="sys-publisher")
                if self.cluster is not None:
                    await self.cluster.start(self.broker, tg)
                    self._install_mgmt()
                await self._start_http()
                self._write_pid_file()
                self._started.set()
                log_event(
                    log, "info", "node started", node=self.name, version=__version__,
                    listeners=describe(self.listeners) or "none",
                    fd_limit=self.fds.limit if self.fds is not None else None,
                )
                await self._stop_event.wait()
                await self._shutdown(loop)
                timer.cancel()
                overflow_task.cancel()
                if sys_task is not None:
                    sys_task.cancel()
        finally:
            for listener in self.listeners:
                listener.stop_accepting()
            self._remove_pid_file()

    def _install_mgmt(self) -> None:
        from mqttmesh.runtime.http_ops import NodeOps

        ops = getattr(self.cluster, "ops", None)
        if ops is not None and hasattr(ops, "local_ops"):
            node_ops = NodeOps(self)
            ops.local_ops.update(node_ops.handlers())
            ops.on_joined.append(node_ops.on_joined)

    async def _start_http(self) -> None:
        factory = Node.http_app_factory
        dashboard = getattr(self.settings, "dashboard", None)
        spec = next(iter(getattr(dashboard, "listeners", ()) or ()), None)
        if factory is None or spec is None or not spec.enable:
            return
        from mqttmesh.runtime.http_server import HttpServer

        server = HttpServer(spec.bind.host, spec.bind.port, factory(self),
                            listener_id="http:dashboard", max_connections=spec.max_connections)
        try:
            await server.start()
        except ListenerBindError as exc:
            self._bind_failed(exc)
            raise
        self.http = server
        log_event(log, "info", "http listener started", listener="http:dashboard",
                  address=f"{spec.bind.host}:{server.bound_port}")

    async def _bind_listeners(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.scheduler is not None
        self.fds = FdBudget(raise_fd_limit())
        for spec in listener_specs(self.settings):
            if not spec.enable:
                continue
            listener = Listener(spec, self.broker, loop, self.scheduler)
            listener.fds = self.fds
            try:
                await listener.start()
            except ListenerBindError as exc:
                self._bind_failed(exc)
                raise
            self.listeners.append(listener)

    def _bind_failed(self, exc: ListenerBindError) -> None:
        """A listener could not bind: say which and where, stop the ones already bound."""
        log_event(log, "error", "listener cannot bind", listener=exc.listener,
                  address=exc.address, reason=exc.reason)
        for started in self.listeners:
            started.stop_accepting()

    async def _timer_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        broker = self.broker
        while True:
            now = loop.time()
            try:
                deadline = broker.tick(now)
            except Exception:
                log.exception("broker timer failed")
                deadline = None
            delay = TICK_MAX_INTERVAL
            if deadline is not None:
                delay = min(max(deadline - loop.time(), 0.0), TICK_MAX_INTERVAL)
            await asyncio.sleep(delay)

    async def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        for listener in self.listeners:
            listener.stop_accepting()
        if self.http is not None:
            await self.http.stop()
        if self.cluster is not None:
            try:
                await self.cluster.stop()
            except Exception:
                log.exception("cluster service failed to stop")
        links = [link for listener in self.listeners for link in list(listener.links)]
        shutdown = getattr(self.broker, "shutdown", None)
        if callable(shutdown):
            # The broker closes every channel (v5: DISCONNECT 0x8B) through its outlets.
            try:
                shutdown(loop.time())
            except Exception:
                log.exception("broker shutdown failed")
        for link in links:
            link.close()
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                for listener in self.listeners:
                    await listener.wait_idle()
        except TimeoutError:
            pass
        for listener in self.listeners:
            for link in list(listener.links):
                link.abort()
            await listener.wait_closed()

    def _write_pid_file(self) -> None:
        path = self.pid_file
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(tmp, path)

    def _remove_pid_file(self) -> None:
        path = self.pid_file
        with contextlib.suppress(OSError):
            with open(path, encoding="ascii") as fh:
                if fh.read().strip() != str(os.getpid()):
                    return  # not ours
            os.unlink(path)

    def uptime(self) -> float:
        if self.started_at is None or self._loop is None:
            return 0.0
        return self._loop.time() - self.started_at

    async def _report_overflow(self) -> None:
        """Say which sessions lost messages to a full queue (``max_mqueue_len``): at most
        one line per ``every`` seconds, naming the worst clients (the drops are also in
        ``messages.dropped``)."""
        while True:
            every = OVERFLOW_REPORT_INTERVAL
            await asyncio.sleep(every)
            overflow = self.broker.queue_overflow if self.broker is not None else None
            if not overflow:
                continue
            self.broker.queue_overflow = {}
            worst = sorted(overflow.items(), key=lambda kv: -kv[1])[:5]
            log_event(log, "warning", "message queue full: oldest messages dropped",
                      node=self.name, sessions=len(overflow), dropped=sum(overflow.values()),
                      clients=", ".join(f"{cid}:{n}" for cid, n in worst),
                      limit=self.broker.config.max_mqueue_len, window=f"{every:g}s")

    def dropped_backpressure(self) -> int:
        return self.scheduler.dropped_qos0 if self.scheduler is not None else 0

    def connection_count(self) -> int:
        return sum(len(listener.links) for listener in self.listeners)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
