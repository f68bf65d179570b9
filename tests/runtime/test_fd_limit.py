"""Running out of file descriptors is a logged refusal, not a silent drop.

A real node process started under ``ulimit -n 120`` (soft = hard, so it cannot raise it):
connections beyond the limit minus a reserve are refused and the node says why, clients
already connected keep working, and a freed descriptor is usable again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mqttmesh.runtime.listeners import FD_RESERVE, FdBudget, raise_fd_limit
from tests.helpers.nodes import free_port, unique_node_name, wait_until

LIMIT = 120


def _connect(port: int, cid: str) -> tuple[socket.socket, bool]:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(3)
    raw = cid.encode()
    s.sendall(bytes([0x10, 12 + len(raw), 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, len(raw)])
              + raw)
    try:
        return s, s.recv(4)[:1] == b"\x20"  # CONNACK
    except OSError:
        return s, False


@pytest.fixture
def low_limit_node(tmp_path):
    port = free_port()
    env = {**os.environ,
           "MQTTMESH_NODE__NAME": unique_node_name(),
           "MQTTMESH_NODE__DATA_DIR": str(tmp_path),
           "MQTTMESH_NODE__COOKIE": "fd-limit-test",
           "MQTTMESH_LISTENERS__TCP__DEFAULT__BIND": f"127.0.0.1:{port}",
           "MQTTMESH_LISTENERS__SSL__DEFAULT__ENABLE": "false",
           "MQTTMESH_LISTENERS__WS__DEFAULT__ENABLE": "false",
           "MQTTMESH_LISTENERS__WSS__DEFAULT__ENABLE": "false",
           "MQTTMESH_DASHBOARD__LISTENERS__HTTP__ENABLE": "false"}
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", f"ulimit -n {LIMIT} && exec {sys.executable} -m mqttmesh foreground"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "node started" in log.read_text() or proc.poll() is not None, 20,
                   what="node start")
        assert proc.poll() is None, log.read_text()
        yield port, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_connections_beyond_the_descriptor_limit_are_refused_and_logged(low_limit_node):
    port, log = low_limit_node
    assert f"fd_limit={LIMIT}" in log.read_text()
    held, accepted = [], 0
    try:
        for i in range(LIMIT):
            s, ok = _connect(port, f"fd{i}")
            held.append(s)
            accepted += ok
        assert 0 < accepted <= LIMIT - FD_RESERVE
        wait_until(lambda: "file descriptor limit (RLIMIT_NOFILE) is 120" in log.read_text(),
                   5, what="the refusal logged")
        # the connected ones still work: PINGREQ -> PINGRESP on the first
        held[0].sendall(b"\xc0\x00")
        assert held[0].recv(2) == b"\xd0\x00"
        for s in held:
            s.close()
        held = []
        deadline = time.monotonic() + 10
        ok = False
        while not ok and time.monotonic() < deadline:  # descriptors are given back
            s, ok = _connect(port, "again")
            s.close()
        assert ok
    finally:
        for s in held:
            s.close()


def test_fd_budget_keeps_a_reserve_and_raise_fd_limit_reaches_the_hard_limit():
    budget = FdBudget(FD_RESERVE + 2)
    assert budget.take(0.0, "t") and budget.take(0.0, "t")
    assert not budget.take(0.0, "t") and budget.refused == 1
    budget.give()
    assert budget.take(1.0, "t")
    import resource
    soft = raise_fd_limit()
    assert soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or soft == hard
