"""SharedTable: replicated (group, filter) -> nodes and the node pick per strategy."""

from __future__ import annotations

import collections
import random

from mqttmesh.cluster.shared import SharedTable

NODES = ["a@h", "b@h", "c@h"]
UP = {"b@h", "c@h"}


def table(strategy: str) -> SharedTable:
    t = SharedTable("a@h", strategy, random.Random(7))
    for n in NODES:
        t.set_node(n, [("g", "s/#")], None if n == "a@h" else ("e", 1))
    return t


def picks(t: SharedTable, n: int, topic=lambda i: f"s/{i}", sender=lambda i: f"c{i}"):
    return collections.Counter(t.picks(topic(i), sender(i), UP)[0][2] for i in range(n))


def test_round_robin_spreads_evenly():
    assert picks(table("round_robin"), 30) == {n: 10 for n in NODES}


def test_sticky_keeps_one_node_while_it_has_members():
    t = table("sticky")
    first = picks(t, 20)
    assert len(first) == 1
    (node,) = first
    t.set_node(node, [], ("e", 2)) if node != "a@h" else t.set_node(node, [])
    again = picks(t, 20)
    assert len(again) == 1 and node not in again


def test_hash_strategies_are_stable_per_key():
    t = table("hash_clientid")
    by_client = {t.picks(f"s/{i}", "same", UP)[0][2] for i in range(20)}
    assert len(by_client) == 1
    t = table("hash_topic")
    by_topic = {t.picks("s/x", f"c{i}", UP)[0][2] for i in range(20)}
    assert len(by_topic) == 1
    assert len(picks(t, 60)) == 3  # different topics spread


def test_local_prefers_this_node_random_spreads():
    assert picks(table("local"), 20) == {"a@h": 20}
    assert len(picks(table("random"), 60)) == 3


def test_down_nodes_and_stale_versions_are_ignored():
    t = table("round_robin")
    assert set(p[2] for p in (t.picks("s/1", None, set()) for _ in range(5)) for p in p) \
        == {"a@h"}
    assert not t.set_node("b@h", [], ("e", 1))  # not newer: ignored
    assert t.set_node("b@h", [], ("e", 2))
    assert picks(t, 20) == {"a@h": 10, "c@h": 10}
    t.drop_node("c@h")
    assert picks(t, 5) == {"a@h": 5}
    assert t.picks("other", None, UP) == []
