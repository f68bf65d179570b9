"""Shared pieces of the long fault runs (not part of the test suite): a 3-node cluster of
real processes on 127.0.<net>.1..3, QoS 1 streams, convergence checks, a report line."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.cluster.cluster_nodes import ClusterNode, ctl, status_of  # noqa: E402
from tests.helpers import Client  # noqa: E402
from tests.helpers.clients import unique  # noqa: E402
from tests.helpers.nodes import _free_on  # noqa: E402
from tests.helpers.partition import QosTraffic  # noqa: E402

__all__ = ["start_cluster", "converged", "wait_converged", "Stream", "ctl", "status_of",
           "ClusterNode", "Client", "unique"]


def hosts(net: int) -> tuple[str, ...]:
    return tuple(f"127.0.{net}.{i}" for i in (1, 2, 3))


def start_cluster(workdir: Path, net: int, config: str = "") -> list[ClusterNode]:
    hs = hosts(net)
    for _ in range(200):
        k = random.randrange(100, 900)
        if all(_free_on(h, base + k) for h in hs for base in (4370, 5370)):
            break
    nodes = [ClusterNode(workdir / f"n{i}", name=f"mqttmesh{k}@{h}", config=config)
             for i, h in enumerate(hs)]
    for node in nodes:
        node.start()
    for node in nodes[1:]:
        result = ctl(node, "cluster", "join", nodes[0].name)
        if result.code != 0:
            raise SystemExit(f"join failed: {result.err}")
    if wait_converged(nodes, 30) is None:
        raise SystemExit("cluster did not form")
    return nodes


def converged(nodes: list[ClusterNode]) -> bool:
    names = sorted(n.name for n in nodes)
    want = {"running_nodes": names, "stopped_nodes": []}
    try:
        if not all(status_of(n) == want for n in nodes):
            return False
        verify = ctl(nodes[0], "cluster", "routes", "verify", "--json")
    except (AssertionError, OSError, ValueError, Exception):
        return False
    if verify.code != 0:
        return False
    report = json.loads(verify.out)
    return not report["differences"] and report["nodes"] == names


def wait_converged(nodes: list[ClusterNode], timeout: float) -> float | None:
    """Seconds until converged, or None at the deadline."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if converged(nodes):
            return time.monotonic() - start
        time.sleep(0.25)
    return None


class Stream:
    """QoS 1 stream: publisher on node ``a``, subscriber (persistent session) on node ``b``."""

    def __init__(self, nodes: list[ClusterNode], a: int, b: int, rate: float) -> None:
        self.a, self.b = a, b
        self.topic = unique(f"f{a}{b}")
        na, nb = nodes[a], nodes[b]
        self.sub = Client(nb.port, host=nb.host, clean=False, client_id=unique("s")).connect()
        self.sub.subscribe(self.topic, qos=1)
        self.pub = Client(na.port, host=na.host).connect()
        deadline = time.monotonic() + 15
        while True:  # routed?
            self.pub.publish(self.topic, b"0", qos=1)
            try:
                self.sub.expect(timeout=0.3, topic=self.topic)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        self.sub.drain()
        self.traffic = QosTraffic(self.pub, [self.sub], self.topic, rate).start()

    def finish(self, timeout: float):
        tally = self.traffic.finish(timeout)
        for c in (self.pub, self.sub):
            try:
                c.close()
            except Exception:
                pass
        return tally
