"""RouteTable: own stream, replicas under reordered / duplicated / lost deltas, matching."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mqttmesh.cluster import ApplyResult, RouteTable
from mqttmesh.cluster.wire.v1 import OP_ADD

A, B, C = "a@127.0.0.1", "b@127.0.0.2", "c@127.0.0.3"


def test_own_changes_are_versioned_and_idempotent():
    t = RouteTable(A, "e1")
    d1 = t.add_local("x/+")
    assert d1 is not None and d1.version == 1 and d1.op == OP_ADD
    assert t.add_local("x/+") is None
    d2 = t.remove_local("x/+")
    assert d2 is not None and d2.version == 2
    assert t.remove_local("x/+") is None
    assert t.own_digest().hash == 0 and t.own_digest().count == 0


def test_match_excludes_self_and_down_nodes_and_purge():
    a = RouteTable(A, "ea")
    a.add_local("s/#")
    assert a.apply_deltas(B, "eb", 1, [(1, "s/+"), (1, "t")]) is ApplyResult.APPLIED
    a.apply_snapshot(C, "ec", 5, ["s/1", "#"])
    assert a.match("s/1") == {B, C}
    assert a.match("$SYS/x") == set()  # '#' does not match $ topics [MQTT-4.7.2-1]
    a.set_down(C, True)
    assert a.match("s/1") == {B}
    a.set_down(C, False)
    assert a.match("t") == {C, B}
    assert a.purge(C) == 2
    assert a.match("s/1") == {B}
    assert a.explain("s/1") == [("s/#", [A]), ("s/+", [B])]
    assert a.wipe_others() == 2 and a.match("s/1") == set()
    assert a.own_filters() == {"s/#"}


def test_gap_then_snapshot_then_late_delta_is_duplicate():
    src = RouteTable(B, "eb")
    deltas = [src.add_local(f"t/{i}") for i in range(5)]
    a = RouteTable(A, "ea")
    assert a.apply_deltas(B, "eb", 1, [(deltas[0].op, deltas[0].topic_filter)]) \
        is ApplyResult.APPLIED
    assert a.apply_deltas(B, "eb", 3, [(deltas[2].op, deltas[2].topic_filter)]) \
        is ApplyResult.GAP
    # while awaiting the snapshot, further deltas are not applied
    assert a.apply_deltas(B, "eb", 4, [(1, "t/3")]) is ApplyResult.GAP
    epoch, version, filters = src.own_snapshot()
    assert a.apply_snapshot(B, epoch, version, filters)
    assert a.apply_deltas(B, "eb", 2, [(1, "t/1")]) is ApplyResult.DUPLICATE
    assert a.filters_of(B) == src.own_filters()
    assert not a.needs_resync(B, src.own_digest())


def test_new_epoch_from_its_start_replaces_later_is_a_gap():
    a = RouteTable(A, "ea")
    a.apply_deltas(B, "b1", 1, [(1, "x")])
    # the origin restarted: a stream told from version 1 replaces the old replica
    assert a.apply_deltas(B, "b2", 1, [(1, "y")]) is ApplyResult.APPLIED
    assert a.filters_of(B) == {"y"}
    assert a.apply_deltas(B, "b3", 4, [(1, "z")]) is ApplyResult.GAP
    assert a.needs_resync(B, RouteTable(B, "b2").own_digest())


def test_digest_detects_divergence_at_same_version():
    a = RouteTable(A, "ea")
    a.apply_snapshot(B, "eb", 2, ["x", "y"])
    src = RouteTable(B, "eb")
    src.add_local("x")
    src.add_local("z")
    assert a.needs_resync(B, src.own_digest())


ops = st.lists(st.tuples(st.booleans(), st.sampled_from([f"f/{i}" for i in range(6)]
                                                        + ["f/+", "#", "f/#"])),
               min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(ops=ops, seed=st.integers(0, 2**32), loss=st.floats(0, 0.4),
       dup=st.floats(0, 0.4), batch=st.integers(1, 4))
def test_replica_converges_under_reorder_duplicate_loss(ops, seed, loss, dup, batch):
    rng = random.Random(seed)
    origin = RouteTable(B, "eb")
    sent = []  # (first_version, [(op, filter)])
    pending: list = []
    for add, f in ops:
        d = origin.add_local(f) if add else origin.remove_local(f)
        if d is None:
            continue
        pending.append(d)
        if len(pending) >= batch:
            sent.append((pending[0].version, [(x.op, x.topic_filter) for x in pending]))
            pending = []
    if pending:
        sent.append((pending[0].version, [(x.op, x.topic_filter) for x in pending]))
    network = []
    for item in sent:
        if rng.random() < loss:
            continue
        network.append(item)
        if rng.random() < dup:
            network.append(item)
    rng.shuffle(network)
    replica = RouteTable(A, "ea")
    for first, batch_ops in network:
        result = replica.apply_deltas(B, "eb", first, batch_ops)
        if result is ApplyResult.GAP and rng.random() < 0.5:
            replica.apply_snapshot(B, *origin.own_snapshot())
        # invariant: the replica is always a prefix-state of the origin's history
        rep = replica.replica_digest(B)
        assert rep is not None
    # anti-entropy at the end (digest on link reconnection / periodic)
    if replica.needs_resync(B, origin.own_digest()):
        replica.apply_snapshot(B, *origin.own_snapshot())
    assert replica.filters_of(B) == origin.own_filters()
    assert replica.replica_digest(B) == origin.own_digest()
    for topic in ("f/1", "f/5", "g"):
        expected = {B} if any(
            __import__("mqttmesh.protocol", fromlist=["matches"]).matches(f, topic)
            for f in origin.own_filters()) else set()
        assert replica.match(topic) == expected


def test_replica_is_prefix_of_history():
    origin = RouteTable(B, "eb")
    history = {0: frozenset()}
    deltas = []
    for i, f in enumerate(["a", "b", "a", "c", "b"]):
        d = origin.add_local(f) if i < 2 or f == "c" else origin.remove_local(f)
        deltas.append(d)
        history[d.version] = frozenset(origin.own_filters())
    replica = RouteTable(A, "ea")
    for d in deltas:
        replica.apply_deltas(B, "eb", d.version, [(d.op, d.topic_filter)])
        rd = replica.replica_digest(B)
        assert frozenset(replica.filters_of(B)) == history[rd.version]
