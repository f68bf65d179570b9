"""`mqttmesh start/stop/ping` and `foreground` against a real node, via subprocess.

Skipped while the node cannot run yet (runtime `Node` or broker `Broker` not importable).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    from mqttmesh.cli.daemon import pid_alive as alive

    return alive(pid)


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.port = free_port()
        self.data = tmp_path / "data"
        self.config = tmp_path / "n.conf"
        self.config.write_text(
            'node.name = "clitest1@127.0.0.1"\n'
            'node.cookie = "cli-test-cookie"\n'
            f'node.data_dir = "{self.data}"\n'
            f'listeners.tcp.default.bind = "127.0.0.1:{self.port}"\n'
            "listeners.ws.default.enable = false\n"
            "listeners.ssl.default.enable = false\n"
            "listeners.wss.default.enable = false\n"
            "dashboard.listeners.http.enable = false\n")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("MQTTMESH_", "EMQX_"))}

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mqttmesh", *args, "-c", str(self.config)],
                              capture_output=True, text=True, timeout=timeout, env=self.env,
                              cwd=self.dir)

    @property
    def pid_file(self) -> Path:
        return self.data / "mqttmesh.pid"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path)
    yield c
    pid = c.pid()
    if pid is not None and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_start_ping_stop(cli: Cli) -> None:
    out = cli.run("start")
    assert out.returncode == 0, out.stderr
    pid = cli.pid()
    assert pid is not None and pid_alive(pid)
    assert accepts(cli.port)
    assert (cli.data / "log" / "mqttmesh.log").exists()

    out = cli.run("ping")
    assert (out.returncode, out.stdout.strip()) == (0, "pong")

    out = cli.run("start")
    assert out.returncode == 1 and "already running" in out.stderr

    out = cli.run("stop")
    assert out.returncode == 0, out.stderr
    assert not pid_alive(pid)
    assert not cli.pid_file.exists()
    assert not accepts(cli.port)

    out = cli.run("ping")
    assert out.returncode == 1
    assert "Node clitest1@127.0.0.1 not responding to pings." in out.stderr
    out = cli.run("stop")
    assert out.returncode == 1 and "not running" in out.stderr


def test_start_failure_shows_the_log(cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", cli.port))
        busy.listen()
        out = cli.run("start")
    assert out.returncode == 1
    assert "failed to start" in out.stderr
    assert str(cli.port) in out.stderr  # the node's own complaint, from the log tail
    assert not cli.pid_file.exists()


def test_foreground_sigterm_is_graceful(cli: Cli) -> None:
    log = open(cli.dir / "foreground.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mqttmesh", "foreground", "-c",
                             str(cli.config)], env=cli.env, cwd=cli.dir,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: cli.pid_file.exists() or proc.poll() is not None)
        assert proc.poll() is None
        assert cli.pid() == proc.pid
        assert accepts(cli.port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not cli.pid_file.exists()
        text = (cli.dir / "foreground.log").read_text()
        assert "[info] node stopped node=clitest1@127.0.0.1" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_foreground_sigint(cli: Cli) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mqttmesh", "foreground", "-c",
                             str(cli.config)], env=cli.env, cwd=cli.dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: cli.pid_file.exists() or proc.poll() is not None)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_node_option_and_env(cli: Cli) -> None:
    cli.env["MQTTMESH_NODE__NAME"] = "fromenv@127.0.0.1"
    out = cli.run("start", "--node", "fromopt@127.0.0.1")
    assert out.returncode == 0, out.stderr
    assert "fromopt@127.0.0.1" in out.stdout
    out = cli.run("ping", "--node", "fromopt@127.0.0.1")
    assert out.returncode == 0
    out = cli.run("stop")
    assert out.returncode == 0, out.stderr
