"""Retained messages persisted in the data dir (issue 6): a restart of every node keeps them,
deletes are cluster-wide and stay deleted."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.cluster_nodes import ClusterNode, ctl, pick_offset, retained_on, wait_running
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def test_retained_survive_a_restart_of_every_node_and_deletes_stay(tmp_path: Path):
    offset = pick_offset()
    nodes = [ClusterNode(tmp_path / f"n{i}", name=f"mqttmesh{offset}@{h}")
             for i, h in enumerate(HOSTS)]
    try:
        for node in nodes:
            node.start()
        for node in nodes[1:]:
            assert ctl(node, "cluster", "join", nodes[0].name).code == 0
        wait_running(nodes)
        kept, gone = unique("keep"), unique("gone")
        pub = Client(nodes[0].port, host=nodes[0].host).connect()
        pub.publish(kept, b"kept", qos=1, retain=True)
        pub.publish(gone, b"soon deleted", qos=1, retain=True)
        pub.close()
        wait_until(lambda: retained_on(nodes[2], kept) == b"kept", 5, interval=0.1,
                   what="retained from n1 seen on n3")
        wait_until(lambda: retained_on(nodes[2], gone) == b"soon deleted", 5, interval=0.1,
                   what="second retained seen on n3")
        deleter = Client(nodes[1].port, host=nodes[1].host).connect()
        deleter.publish(gone, b"", qos=1, retain=True)  # delete, from n2
        deleter.close()
        for node in nodes:
            wait_until(lambda node=node: retained_on(node, gone) is None, 5, interval=0.1,
                       what=f"delete reached {node.name}")
        for node in nodes:
            node.stop(timeout=10)
        for node in nodes:
            assert (node.data_dir / "retained.db").exists()
        for node in nodes:
            node.start()
        # each node has them back from its own data dir, before it links to the others
        for node in nodes:
            assert retained_on(node, kept) == b"kept"
            assert retained_on(node, gone) is None
        wait_running(nodes)
        for node in nodes:
            assert retained_on(node, kept) == b"kept"
            assert retained_on(node, gone) is None
    finally:
        for node in nodes:
            node.stop(timeout=5)
