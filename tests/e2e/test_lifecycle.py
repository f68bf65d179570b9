"""Node lifecycle end to end: pid file, graceful SIGTERM, port already in use."""

from __future__ import annotations

import signal
import socket
import time

from tests.helpers import Client


def test_pid_file_written_when_ready(node_factory):
    node = node_factory()
    assert node.pid_file.read_text().strip() == str(node.proc.pid)
    assert "node started" in node.log_text()


def test_sigterm_is_graceful(node_factory):
    node = node_factory()
    v5 = Client(node.port, version=5).connect()
    v3 = Client(node.port, version=4).connect()
    node.signal(signal.SIGTERM)
    assert v5.wait_disconnected(timeout=5) == 0x8B  # Server shutting down
    v3.wait_disconnected(timeout=5)
    assert node.wait_exit(timeout=10) == 0
    assert not node.pid_file.exists(), "pid file must be removed on graceful stop"
    assert not node.accepts("tcp")
    v5.close()
    v3.close()


def test_sigterm_publishes_no_error(node_factory):
    node = node_factory()
    node.signal(signal.SIGTERM)
    assert node.wait_exit(timeout=10) == 0
    log = node.log_text(tail=None)
    assert "Traceback" not in log, log


def test_port_in_use_fails_with_one_line(node_factory):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        node = node_factory(start=False)
        node.ports["tcp"] = holder.getsockname()[1]
        node.spawn()
        code = node.wait_exit(timeout=15)
        assert code != 0
        log = node.log_text(tail=None)
        address = f"127.0.0.1:{node.ports['tcp']}"
        lines = [line for line in log.splitlines() if address in line and "tcp:default" in line]
        assert lines, f"no line naming tcp:default and {address}:\n{log}"
        assert "Traceback" not in log, log
        assert not node.pid_file.exists()
    finally:
        holder.close()


def test_node_restarts_on_same_ports(node_factory):
    node = node_factory()
    ports = dict(node.ports)
    assert node.stop() == 0
    deadline = time.monotonic() + 5
    node.ports = ports
    while True:  # the OS may take a moment to release the port: retry, bounded
        node.spawn()
        try:
            node.wait_ready(timeout=10)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    with Client(node.port) as client:
        client.connect()
