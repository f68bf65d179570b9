"""cluster.proto_dist = inet6_tcp (nodes named ``name@::1``) and epmd mode (``WITH_EPMD=1``).

IPv6: two nodes on ::1 with different offsets form a cluster over IPv6 and forward.
epmd: two nodes on one host address register with the port mapper on 4369 (the first one
to bind it serves it in process), take their distribution ports from
``node.dist_listen_min..max``, find each other (and ctl finds them) through the mapper, and
when the node serving the mapper stops, the other one takes the mapper over.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket

import pytest

from mqttmesh.config import validate_node_name
from mqttmesh.errors import ConfigError
from mqttmesh.runtime import epmd
from tests.cluster.cluster_nodes import ClusterNode, ctl, status_of
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import _free_on, wait_until


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class V6Node(ClusterNode):
    """A cluster node whose listeners bind ``[::1]:port`` (HOCON bind syntax)."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        self.config_path.write_text(re.sub(r'"::1:(\d+)"', r'"[::1]:\1"', text))


def _forward_check(a: ClusterNode, b: ClusterNode) -> None:
    topic = unique("fw")
    sub = Client(b.port, host=b.host).connect()
    sub.subscribe(f"{topic}/#", qos=1)
    wait_until(lambda: json.loads(ctl(a, "route", "explain", f"{topic}/x", "--json").out)
               .get("forward_to") == [b.name], 10, what="route")
    pub = Client(a.port, host=a.host).connect()
    pub.publish(f"{topic}/x", "hello", qos=1, wait=True)
    assert sub.expect(timeout=10).payload == b"hello"
    pub.close()
    sub.close()


def _join(a: ClusterNode, b: ClusterNode) -> None:
    result = ctl(b, "cluster", "join", a.name)
    assert result.code == 0, result.err
    names = sorted([a.name, b.name])
    for node in (a, b):
        wait_until(lambda node=node: status_of(node)["running_nodes"] == names, 10,
                   what="both running")


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
def test_inet6_tcp_two_nodes_on_ipv6_loopback(tmp_path):
    for _ in range(200):
        k = random.randrange(100, 900)
        if all(_free_on("::1", base + k + i) for base in (4370, 5370) for i in range(2)):
            break
    nodes = [V6Node(tmp_path / f"n{i}", name=f"mqttmesh{k + i}@::1",
                    config="cluster.proto_dist = inet6_tcp\n") for i in range(2)]
    try:
        for node in nodes:
            node.start()
        _join(*nodes)
        _forward_check(*nodes)
        log = nodes[0].log_path.read_text()
        assert f"distribution=[::1]:{4370 + k}" in log or "distribution=::1" in log
    finally:
        for node in nodes:
            node.stop(timeout=5)


def test_ipv6_node_names_are_written_without_brackets():
    assert validate_node_name("n1@::1") == "n1@::1"
    with pytest.raises(ConfigError, match="without brackets"):
        validate_node_name("n1@[::1]")


def _epmd_host() -> str:
    for _ in range(200):
        host = f"127.0.0.{random.randrange(10, 250)}"
        if _free_on(host, epmd.EPMD_PORT):
            return host
    raise RuntimeError("no loopback address with 4369 free")


def test_epmd_mode_two_nodes_one_host(tmp_path):
    host = _epmd_host()
    lo = random.randrange(20000, 30000)
    while not all(_free_on(host, p) for p in range(lo, lo + 4)):
        lo += 4
    k = random.randrange(100, 900)
    while not all(_free_on(host, 5370 + k + i) for i in range(2)):
        k = random.randrange(100, 900)
    config = f"node.dist_listen_min = {lo}\nnode.dist_listen_max = {lo + 3}\n"
    nodes = [ClusterNode(tmp_path / f"n{i}", name=f"mqttmesh{k + i}@{host}", config=config,
                         env={"WITH_EPMD": "1"}) for i in range(2)]
    try:
        for node in nodes:
            node.start()
        registered = asyncio.run(epmd.names(host))
        assert set(registered) == {f"mqttmesh{k}", f"mqttmesh{k + 1}"}, registered
        assert sorted(registered.values()) == [lo, lo + 1]  # from the range, not 4370+k
        _join(*nodes)   # ctl and the nodes find the dist ports through the mapper
        _forward_check(*nodes)
        nodes[0].stop(timeout=5)   # it served the mapper: node 2 takes it over
        wait_until(lambda: _names(host) == {f"mqttmesh{k + 1}": lo + 1}, 10,
                   what="mapper taken over by the surviving node")
        assert status_of(nodes[1])["stopped_nodes"] == [nodes[0].name]
    finally:
        for node in nodes:
            node.stop(timeout=5)


def _names(host: str) -> dict[str, int] | None:
    try:
        return asyncio.run(epmd.names(host))
    except OSError:
        return None
