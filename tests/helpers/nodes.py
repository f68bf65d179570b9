"""Real mqttmesh node processes for tests (``python -m mqttmesh foreground``).

Ports are picked by binding port 0 on the node's address (never fixed numbers); readiness is
the pid file plus a TCP connect to every enabled listener, polled against a deadline (no
sleeping as synchronisation). Each node logs to ``<dir>/node.log``; the conftest attaches the
tail of every live node's log to a failing test's report.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "NodeProcess", "NodeStartError", "free_port", "live_nodes", "unique_node_name", "wait_until",
]

_LIVE: list[NodeProcess] = []

LISTENER_TYPES = ("tcp", "ssl", "ws", "wss")


def live_nodes() -> list[NodeProcess]:
    """Nodes started and not yet stopped (for failure reports and teardown)."""
    return list(_LIVE)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _free_on(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
        return True
    except OSError:
        return False


def unique_node_name(host: str = "127.0.0.1") -> str:
    """``mqttmesh<k>@host`` whose cluster ports (4370+k, 5370+k: SPEC §3) are free now, so
    nodes started in parallel never share them, with or without the cluster service."""
    rng = random.Random(os.getpid() * 7919 + time.monotonic_ns())
    for _ in range(200):
        k = rng.randrange(1, 990)
        if _free_on(host, 4370 + k) and _free_on(host, 5370 + k):
            return f"mqttmesh{k}@{host}"
    raise RuntimeError("no free cluster port offset")


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate()`` until truthy (returned) or raise AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class NodeStartError(RuntimeError):
    """The node did not become ready; the message carries its log."""


def _hocon_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NodeProcess:
    """One node process.

    Args:
        workdir: a private directory (config, data dir and log go there).
        name: node name (``name@host``); its host part is the address listeners bind to.
            Default: ``unique_node_name()`` (distinct cluster ports for parallel nodes).
        listeners: listener types to enable (each on a free port); the others are disabled.
        tls: a ``TlsFiles`` for ssl/wss listeners.
        config: extra HOCON text appended to the generated file.
        env: extra environment variables (``MQTTMESH_*`` overrides...).
    """

    def __init__(
        self,
        workdir: Path | str,
        name: str | None = None,
        listeners: tuple[str, ...] = ("tcp",),
        tls=None,
        config: str = "",
        env: Mapping[str, str] | None = None,
        ws_path: str = "/mqtt",
        sys_msg_interval: str = "1m",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name or unique_node_name()
        self.host = self.name.split("@", 1)[1]
        self.enabled = tuple(listeners)
        self.tls = tls
        self.extra_config = config
        self.extra_env = dict(env or {})
        self.ws_path = ws_path
        self.sys_msg_interval = sys_msg_interval
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "mqttmesh.conf"
        self.log_path = self.workdir / "node.log"
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP listener's port."""
        return self.ports["tcp"]

    def accepts(self, ltype: str) -> bool:
        """Whether the listener's port accepts TCP connections now."""
        return self._accepts(self.ports[ltype])

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "mqttmesh.pid"

    # -- lifecycle ---------------------------------------------------------------------------
    def write_config(self) -> None:
        for ltype in LISTENER_TYPES:  # disabled ones get a port too: tests check it is closed
            if ltype not in self.ports:
                self.ports[ltype] = free_port(self.host)
        lines = [
            "node {",
            f"  name = {_hocon_string(self.name)}",
            '  cookie = "mqttmesh-test-cookie"',
            f"  data_dir = {_hocon_string(str(self.data_dir))}",
            "}",
            "dashboard.listeners.http.enable = false",
            f"sys_topics.sys_msg_interval = {self.sys_msg_interval}",
            "log.console.level = info",
        ]
        for ltype in LISTENER_TYPES:
            key = f"listeners.{ltype}.default"
            lines.append(f"{key}.bind = {_hocon_string(f'{self.host}:{self.ports[ltype]}')}")
            if ltype not in self.enabled:
                lines.append(f"{key}.enable = false")
                continue
            lines.append(f"{key}.enable = true")
            if ltype in ("ws", "wss"):
                lines.append(f"{key}.websocket.mqtt_path = {_hocon_string(self.ws_path)}")
            if ltype in ("ssl", "wss"):
                if self.tls is None:
                    raise ValueError("ssl/wss listeners need tls=make_tls_files(...)")
                lines.append(f"{key}.ssl_options.certfile = {_hocon_string(self.tls.server_cert)}")
                lines.append(f"{key}.ssl_options.keyfile = {_hocon_string(self.tls.server_key)}")
                lines.append(f"{key}.ssl_options.cacertfile = {_hocon_string(self.tls.ca_cert)}")
        lines.append(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def environment(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("MQTTMESH_", "EMQX_"))
        }
        src = str(Path(__file__).resolve().parents[2] / "src")
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def spawn(self) -> None:
        """Start the process without waiting for readiness."""
        self.write_config()
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mqttmesh", "foreground", "-c", str(self.config_path)],
            cwd=self.workdir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        _LIVE.append(self)

    def start(self, timeout: float = 15.0) -> NodeProcess:
        """Spawn and wait until the pid file exists and every listener accepts."""
        self.spawn()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise NodeStartError(
                    f"node {self.name} exited with {self.proc.returncode} before ready:\n"
                    + self.log_text()
                )
            if self.pid_file.exists() and all(
                self._accepts(self.ports[t]) for t in self.enabled
            ):
                return
            if time.monotonic() >= deadline:
                raise NodeStartError(
                    f"node {self.name} not ready after {timeout}s:\n" + self.log_text()
                )
            time.sleep(0.02)

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._forget()

    def stop(self, timeout: float = 10.0) -> int:
        """Graceful stop (SIGTERM), then kill if it does not exit in time."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._forget()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._forget()

    def _forget(self) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self, tail: int | None = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        if tail is not None:
            lines = lines[-tail:]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<NodeProcess {self.name} ports={self.ports}>"
