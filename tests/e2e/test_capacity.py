"""Capacity end to end: memory per idle connection stays small (target <= 10 KB RSS)."""

from __future__ import annotations

import resource
import socket

import pytest

from tests.helpers.raw import connect_bytes

CONNECTIONS = 1500
TARGET_BYTES = 10 * 1024


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _connect_many(port: int, count: int, prefix: str) -> list[socket.socket]:
    socks = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(connect_bytes(f"{prefix}{i}", version=5 if i % 2 else 4, keepalive=0))
        socks.append(sock)
    for sock in socks:  # every CONNACK arrived: the broker holds all of them
        assert sock.recv(4)[:1] == b"\x20"
    return socks


def test_idle_connection_memory(node_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * CONNECTIONS + 200
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"file descriptor limit {hard} too low")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    node = node_factory()  # inherits the raised limit
    socks = _connect_many(node.port, 200, "warm")  # warm up allocator and caches
    try:
        before = _rss_kb(node.proc.pid)
        socks += _connect_many(node.port, CONNECTIONS, "idle")
        after = _rss_kb(node.proc.pid)
        per_connection = (after - before) * 1024 / CONNECTIONS
        assert per_connection <= TARGET_BYTES, f"{per_connection:.0f} bytes per idle connection"
        assert node.alive()
    finally:
        for sock in socks:
            sock.close()
