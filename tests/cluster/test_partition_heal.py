"""Partitions and autoclean with real nodes on 127.0.1.1/2/3 (iptables cuts; root only).

Figures asserted here (SPEC §4, issue 7): after a partition of ~15 s during which autoclean
removed the nodes of the other side on both sides, autoheal merges the cluster back with no
command: one membership, identical route tables (``ctl cluster routes verify``), every
subscriber reached from every node; a node killed -9 with ``autoclean = 10s`` is removed
10-20 s later and its routes purged everywhere, and merged back when it returns.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from mqttmesh.config import dist_port, rpc_port
from tests.cluster.cluster_nodes import ClusterNode, ctl, status_of
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import _free_on, wait_until
from tests.helpers.partition import Partitioner, available

# Nodes live on 127.0.1.x: ctl and the test's MQTT clients connect from 127.0.0.1 (the
# kernel's source for 127/8), so cutting node <-> node traffic never cuts them.
HOSTS = ("127.0.1.1", "127.0.1.2", "127.0.1.3")


def pick_free_offset() -> int:
    for _ in range(200):
        k = random.randrange(100, 900)
        if all(_free_on(h, base + k) for h in HOSTS for base in (4370, 5370)):
            return k
    raise RuntimeError("no free cluster port offset")


def start_cluster(tmp_path: Path, config: str = "") -> list[ClusterNode]:
    offset = pick_free_offset()
    nodes = [ClusterNode(tmp_path / f"n{i}", name=f"mqttmesh{offset}@{h}", config=config)
             for i, h in enumerate(HOSTS)]
    for node in nodes:
        node.start()
    for node in nodes[1:]:
        result = ctl(node, "cluster", "join", nodes[0].name)
        assert result.code == 0, result.err
    names = sorted(n.name for n in nodes)
    for node in nodes:
        wait_until(lambda node=node: status_of(node)["running_nodes"] == names, 15,
                   what=f"{node.name} sees every node")
    return nodes


@pytest.fixture
def three(tmp_path: Path):
    made: list[ClusterNode] = []

    def start(config: str = "") -> list[ClusterNode]:
        made.extend(start_cluster(tmp_path, config))
        return made

    yield start
    for node in made:
        node.stop(timeout=5)


@pytest.fixture
def partitioner():
    if not available():
        pytest.skip("needs root and iptables")
    parts: list[Partitioner] = []

    def make(nodes: list[ClusterNode]) -> Partitioner:
        ports = sorted({f(n.name) for n in nodes for f in (dist_port, rpc_port)})
        p = Partitioner(ports)
        parts.append(p)
        return p

    yield make
    for p in parts:
        p.close()


def forward_to(node: ClusterNode, topic: str) -> list[str]:
    return json.loads(ctl(node, "route", "explain", topic, "--json").out)["forward_to"]


def converged(nodes: list[ClusterNode]) -> bool:
    names = sorted(n.name for n in nodes)
    want = {"running_nodes": names, "stopped_nodes": []}
    if not all(status_of(n) == want for n in nodes):
        return False
    verify = ctl(nodes[0], "cluster", "routes", "verify", "--json")
    if verify.code != 0:
        return False
    report = json.loads(verify.out)
    return not report["differences"] and report["nodes"] == names


def test_partition_with_autoclean_on_both_sides_heals(three, partitioner):
    nodes = three("cluster.autoclean = 8s\n")
    n1, n2, n3 = nodes
    part = partitioner(nodes)
    topic = unique("ph")
    subs = [Client(n.port, host=n.host).connect() for n in nodes]
    subs[0].subscribe(f"{topic}/#", qos=1)
    part.isolate(n3.host, [n1.host, n2.host])
    t_cut = time.monotonic()
    # both sides see the other stopped, then remove it (autoclean 8 s)
    wait_until(lambda: status_of(n1)["stopped_nodes"] == [n3.name], 10, what="n3 down on n1")
    wait_until(lambda: status_of(n3)["running_nodes"] == [n3.name], 10, what="n3 alone")
    # clients subscribe on both sides during the split
    subs[1].subscribe(f"{topic}/#", qos=1)
    subs[2].subscribe(f"{topic}/#", qos=1)
    wait_until(lambda: status_of(n1) == {"running_nodes": sorted([n1.name, n2.name]),
                                         "stopped_nodes": []}, 15, what="n3 autocleaned")
    wait_until(lambda: status_of(n3) == {"running_nodes": [n3.name], "stopped_nodes": []},
               15, what="n1, n2 autocleaned on n3")
    remaining = 15 - (time.monotonic() - t_cut)
    if remaining > 0:
        time.sleep(remaining)  # the cut lasts ~15 s (a fault's duration, not a sync)
    part.heal()
    t_heal = time.monotonic()
    wait_until(lambda: converged(nodes), 30, interval=0.5, what="one membership and routes")
    heal_s = time.monotonic() - t_heal
    for node in nodes:
        wait_until(lambda node=node: sorted(forward_to(node, f"{topic}/x")) == sorted(
            n.name for n in nodes if n is not node), 10, what="routes everywhere")
    # a publish on any node reaches every subscriber
    pub = [Client(n.port, host=n.host).connect() for n in nodes]
    for i, p in enumerate(pub):
        p.publish(f"{topic}/{i}", b"after heal", qos=1)
        for s in subs:
            assert s.expect(timeout=10, topic=f"{topic}/{i}").payload == b"after heal"
    print(f"partition 15 s with autoclean on both sides: converged {heal_s:.1f} s after heal")
    assert "autoheal" in n1.log_text() + n2.log_text()
    for c in subs + pub:
        c.close()


def test_autoclean_removes_dead_node_and_purges_routes(three):
    nodes = three("cluster.autoclean = 10s\n")
    n1, n2, n3 = nodes
    topic = unique("ac")
    s3 = Client(n3.port, host=n3.host).connect()
    s3.subscribe(f"{topic}/#", qos=1)
    wait_until(lambda: forward_to(n1, f"{topic}/x") == [n3.name], 10, what="route of n3")
    n3.kill()
    t_kill = time.monotonic()
    s3.close()
    # routes of the dead node unused at once; stopped everywhere
    wait_until(lambda: forward_to(n1, f"{topic}/x") == [], 2, what="n3's routes unused")
    for node in (n1, n2):
        assert status_of(node)["stopped_nodes"] == [n3.name]
    want = {"running_nodes": sorted([n1.name, n2.name]), "stopped_nodes": []}
    wait_until(lambda: status_of(n1) == want and status_of(n2) == want, 25, interval=0.2,
               what="n3 autocleaned")
    removed_after = time.monotonic() - t_kill
    assert 10.0 <= removed_after <= 20.0, removed_after
    for node in (n1, n2):
        explain = json.loads(ctl(node, "route", "explain", f"{topic}/x", "--json").out)
        assert all(n3.name not in holders for _, holders in explain["filters"])
    print(f"autoclean 10s: removed {removed_after:.1f} s after kill -9")
    # it comes back (same data dir): autoheal merges it back
    n3.start()
    wait_until(lambda: converged(nodes), 20, interval=0.5, what="n3 merged back")
