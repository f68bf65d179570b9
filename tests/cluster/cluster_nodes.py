"""Cluster node processes for integration tests.

``ClusterNode`` is ``tests.helpers.NodeProcess`` started through
``python -m mqttmesh.runtime.cluster_main foreground`` (the CLI with ``Node.cluster_factory``
set to ``ClusterService``), so it works before Node plugs the cluster in by itself; once it
does, ``cluster_main`` changes nothing. ``ctl(node, *args)`` runs ``python -m mqttmesh ctl``
against a node's config. Names: ``mqttmesh<offset>@127.0.0.<i>``; each test picks its own
random offset so distribution/RPC ports (4370/5370 + offset) do not collide with parallel
tests, and the hosts differ so several nodes share the same ports (SPEC §3).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass

from tests.helpers import NodeProcess
from tests.helpers.nodes import _LIVE, _free_on

__all__ = ["ClusterNode", "ctl", "CtlResult", "pick_offset", "status_of"]


def pick_offset(span: int = 2) -> int:
    """A random name offset in 100..900 whose cluster ports (and the next ``span``) are free
    now on 127.0.0.1/2/3."""
    for _ in range(200):
        k = random.randrange(100, 900)
        if all(_free_on(h, base + k + i) for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3")
               for base in (4370, 5370) for i in range(span)):
            return k
    raise RuntimeError("no free cluster port offset")


class ClusterNode(NodeProcess):
    def spawn(self) -> None:
        self.write_config()
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mqttmesh.runtime.cluster_main", "foreground",
             "-c", str(self.config_path)],
            cwd=self.workdir, env=self.environment(), stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT,
        )
        _LIVE.append(self)


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


def status_of(node: NodeProcess) -> dict[str, list[str]]:
    result = ctl(node, "cluster", "status", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)
