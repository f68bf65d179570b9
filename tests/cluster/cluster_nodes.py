"""Cluster node processes for integration tests.

``ClusterNode`` is ``tests.helpers.NodeProcess`` (``python -m mqttmesh foreground``; every
node runs its ClusterService). ``ctl(node, *args)`` runs ``python -m mqttmesh ctl`` against a
node's config; ``start_cluster`` starts nodes and joins them into one cluster. Names: ``mqttmesh<offset>@127.0.0.<i>``; each test picks its own
random offset so distribution/RPC ports (4370/5370 + offset) do not collide with parallel
tests, and the hosts differ so several nodes share the same ports (SPEC §3).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass

from tests.helpers import Client, NodeProcess
from tests.helpers.nodes import _free_on, wait_until

__all__ = ["ClusterNode", "ctl", "CtlResult", "pick_offset", "pick_offset_on", "status_of",
           "wait_running", "start_cluster", "retained_on", "ctl_call"]


def pick_offset(span: int = 2) -> int:
    """A random name offset in 100..900 whose cluster ports (and the next ``span``) are free
    now on 127.0.0.1/2/3."""
    for _ in range(200):
        k = random.randrange(100, 900)
        if all(_free_on(h, base + k + i) for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3")
               for base in (4370, 5370) for i in range(span)):
            return k
    raise RuntimeError("no free cluster port offset")


def pick_offset_on(hosts: tuple[str, ...] | list[str], span: int = 1) -> int:
    """Like ``pick_offset`` for any set of hosts: a random name offset in 100..900 whose
    cluster ports (and the next ``span - 1``) are free now on every one of ``hosts``."""
    for _ in range(200):
        k = random.randrange(100, 900)
        if all(_free_on(h, base + k + i) for h in hosts
               for base in (4370, 5370) for i in range(span)):
            return k
    raise RuntimeError("no free cluster port offset")


class ClusterNode(NodeProcess):
    """A node process meant to be clustered (named ``mqttmesh<offset>@<host>``)."""


@dataclass
class CtlResult:
    code: int
    out: str
    err: str


def ctl(node: NodeProcess, *args: str, timeout: float = 40.0) -> CtlResult:
    proc = subprocess.run(
        [sys.executable, "-m", "mqttmesh", "ctl", "-c", str(node.config_path), *args],
        capture_output=True, text=True, timeout=timeout, env=node.environment(),
        cwd=node.workdir,
    )
    return CtlResult(proc.returncode, proc.stdout, proc.stderr)


def ctl_call(node: NodeProcess, op: str, args: dict | None = None, timeout: float = 10.0):
    """One ctl operation (``status``, ``routes_list``, ``route_explain``...) run in this
    process (no interpreter start-up: cheap enough to poll); None if the node cannot be
    asked (not up yet, refused)."""
    from mqttmesh.config import load_settings
    from mqttmesh.errors import ClusterError
    from mqttmesh.mgmt.cluster import call_sync

    settings = load_settings(str(node.config_path), node.environment())
    try:
        return call_sync(settings, op, args or {}, timeout)
    except (ClusterError, OSError, TimeoutError):
        return None


def status_of(node: NodeProcess) -> dict[str, list[str]]:
    """``running_nodes`` / ``stopped_nodes`` of ``ctl cluster status --json`` (the SPEC §1
    keys; ``full_status`` has the rest: roles and cores)."""
    full = full_status(node)
    return {"running_nodes": full["running_nodes"], "stopped_nodes": full["stopped_nodes"]}


def full_status(node: NodeProcess) -> dict:
    result = ctl(node, "cluster", "status", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def wait_running(nodes: list[ClusterNode], deadline: float = 20) -> None:
    """Wait until every node's status lists exactly ``nodes`` as running."""
    names = sorted(n.name for n in nodes)
    for node in nodes:
        wait_until(lambda node=node: status_of(node)["running_nodes"] == names, deadline,
                   what=f"{node.name} sees every node running")


def start_cluster(base, hosts: tuple[str, ...], config: str = "") -> list[ClusterNode]:
    """Start one node per host (shared random offset), join them all to the first and wait
    until every node sees all running. On failure the started nodes are stopped."""
    offset = pick_offset()
    made: list[ClusterNode] = []
    try:
        for i, host in enumerate(hosts):
            node = ClusterNode(base / f"n{i}", name=f"mqttmesh{offset}@{host}", config=config)
            made.append(node)
            node.start()
        for node in made[1:]:
            result = ctl(node, "cluster", "join", made[0].name)
            assert result.code == 0, result.err
        wait_running(made, 15)
    except BaseException:
        for node in made:
            node.stop(timeout=5)
        raise
    return made


def retained_on(node: NodeProcess, topic: str) -> bytes | None:
    """The retained payload a new subscriber on ``node`` gets for ``topic`` (None if none)."""
    c = Client(node.port, host=node.host).connect()
    try:
        c.subscribe(topic, qos=1)
        try:
            return c.expect(timeout=0.5).payload
        except AssertionError:
            return None
    finally:
        c.close()
