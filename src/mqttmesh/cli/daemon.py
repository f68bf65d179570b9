"""`start`, `stop`, `ping`: the node as a daemon, found through its pid file.

Contract with runtime: the node writes `<data_dir>/mqttmesh.pid` (its pid, decimal) once
every listener is bound, and removes it on graceful stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mqttmesh.config import Settings

__all__ = ["start", "stop", "ping", "read_pid", "pid_alive", "log_path"]

_POLL = 0.05


def log_path(settings: Settings) -> str:
    """Where `start` sends the daemon's stdout and stderr."""
    return os.path.join(settings.node.data_dir, "log", "mqttmesh.log")


def read_pid(settings: Settings) -> int | None:
    """The pid in the pid file, or None when there is no (readable) pid file."""
    try:
        with open(settings.pid_file, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie (a daemon may be reparented to a non-reaping init)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rpartition(")")[2].split()[0]
        if state in ("Z", "X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        return not cmdline or b"mqttmesh" in cmdline
    except (OSError, IndexError):
        return True


def _running_pid(settings: Settings) -> int | None:
    pid = read_pid(settings)
    return pid if pid is not None and pid_alive(pid) else None


def _remove_pid_file(settings: Settings) -> None:
    try:
        os.remove(settings.pid_file)
    except FileNotFoundError:
        pass


def _tail(path: str, offset: int, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def start(settings: Settings, node_override: str | None, timeout: float) -> int:
    """Spawn `python -m mqttmesh foreground` detached; wait for its pid file."""
    name = settings.node.name
    pid = _running_pid(settings)
    if pid is not None:
        print(f"mqttmesh: node {name} is already running (pid {pid})", file=sys.stderr)
        return 1
    _remove_pid_file(settings)  # stale
    out_path = log_path(settings)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    cmd = [sys.executable, "-m", "mqttmesh", "foreground"]
    if settings.config_file:
        cmd += ["-c", settings.config_file]
    if node_override:
        cmd += ["--node", node_override]
    with open(out_path, "ab") as out:
        offset = out.tell()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            print(f"mqttmesh: node {name} failed to start (exit code {code}); "
                  f"last lines of {out_path}:", file=sys.stderr)
            print(_tail(out_path, offset), file=sys.stderr)
            return 1
        if read_pid(settings) is not None:
            print(f"mqttmesh {name} is started successfully! (pid {proc.pid})")
            return 0
        if time.monotonic() > deadline:
            proc.terminate()
            print(f"mqttmesh: node {name} did not start within {timeout:g}s; "
                  f"last lines of {out_path}:", file=sys.stderr)
            print(_tail(out_path, offset), file=sys.stderr)
            return 1
        time.sleep(_POLL)


def stop(settings: Settings, timeout: float) -> int:
    """SIGTERM the node from the pid file and wait for it to exit."""
    name = settings.node.name
    pid = _running_pid(settings)
    if pid is None:
        _remove_pid_file(settings)
        print(f"mqttmesh: node {name} is not running (no live pid in {settings.pid_file})",
              file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            print(f"mqttmesh: node {name} (pid {pid}) did not stop within {timeout:g}s",
                  file=sys.stderr)
            return 1
        time.sleep(_POLL)
    _remove_pid_file(settings)
    print(f"ok: node {name} stopped")
    return 0


def ping(settings: Settings) -> int:
    """`pong` if the pid file's process is alive."""
    if _running_pid(settings) is not None:
        print("pong")
        return 0
    print(f"Node {settings.node.name} not responding to pings.", file=sys.stderr)
    return 1
