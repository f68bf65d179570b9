"""Client-id conflicts after a partition (issue 7 item 2): the newest connection is kept.

Two nodes on 127.0.1.1/2 (iptables cut; root only). During the split the same client id
connects on both sides (v5, clean start false); after the heal each node sends the claims of
its connected clients on the restarted link (``session.claims``) and the node holding the
lower ``(generation, node)`` claim kicks its connection with 0x8E. Both nodes start with
Lamport clock 0, so both claims have generation 1 and the node name breaks the tie: the
newer connection is made on the node with the higher name (127.0.1.2), as the claim order
only follows real time when the newer CONNECT's node has the higher clock (docs/faults.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mqttmesh.config import dist_port, load_settings, rpc_port
from mqttmesh.mgmt.cluster import call_sync
from tests.cluster.cluster_nodes import ClusterNode, ctl, status_of
from tests.cluster.test_partition_heal import pick_free_offset
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until
from tests.helpers.partition import Partitioner, available

HOSTS = ("127.0.1.1", "127.0.1.2")
TAKEN_OVER = 0x8E


def lookup(node: ClusterNode, client_id: str) -> dict:
    settings = load_settings(str(node.config_path), node.environment())
    return call_sync(settings, "client_lookup", {"client_id": client_id})


@pytest.fixture
def two(tmp_path: Path):
    if not available():
        pytest.skip("needs root and iptables")
    offset = pick_free_offset()
    nodes = [ClusterNode(tmp_path / f"n{i}", name=f"mqttmesh{offset}@{h}")
             for i, h in enumerate(HOSTS)]
    part = None
    try:
        for node in nodes:
            node.start()
        result = ctl(nodes[1], "cluster", "join", nodes[0].name)
        assert result.code == 0, result.err
        names = sorted(n.name for n in nodes)
        for node in nodes:
            wait_until(lambda node=node: status_of(node)["running_nodes"] == names, 15,
                       what=f"{node.name} sees every node")
        part = Partitioner(sorted({f(n.name) for n in nodes for f in (dist_port, rpc_port)}))
        yield nodes, part
    finally:
        if part is not None:
            part.close()
        for node in nodes:
            node.stop(timeout=5)


def test_client_id_on_both_sides_keeps_the_newest_after_heal(two):
    (n1, n2), part = two
    assert n2.name > n1.name
    cid = unique("dup")
    part.cut(n1.host, n2.host)
    wait_until(lambda: status_of(n1)["stopped_nodes"] == [n2.name], 10, what="n2 down on n1")
    wait_until(lambda: status_of(n2)["stopped_nodes"] == [n1.name], 10, what="n1 down on n2")
    older = Client(n1.port, version=5, client_id=cid, host=n1.host, clean=False,
                   session_expiry=300).connect()
    time.sleep(0.5)
    newer = Client(n2.port, version=5, client_id=cid, host=n2.host, clean=False,
                   session_expiry=300).connect()
    assert older.is_connected and newer.is_connected  # one per side during the split
    assert lookup(n1, cid)["registry"][1] == n1.name
    assert lookup(n2, cid)["registry"][1] == n2.name
    part.heal()
    t_heal = time.monotonic()
    # (paho's is_connected() lags behind a server DISCONNECT: wait for the callback)
    assert older.wait_disconnected(20) == TAKEN_OVER
    kicked_s = time.monotonic() - t_heal
    time.sleep(1.0)  # nothing else happens: the newer connection stays
    assert newer.is_connected and newer.disconnect_rc is None
    for node in (n1, n2):
        info = lookup(node, cid)
        assert info["registry"][1] == n2.name, (node.name, info)
    assert lookup(n2, cid)["connected"] and not lookup(n1, cid)["session"]
    print(f"client id on both sides: older connection kicked {kicked_s:.1f} s after heal")
    newer.close()
    older.close()
