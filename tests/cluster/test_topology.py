"""Pure pieces of core/replicant clusters: Topology, pick_core, wire v2, in-order forwarding.

No event loop, no sockets: the rules the runtime relies on (``docs/scaling.md``).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttmesh.cluster import FrameError, Membership, RouteTable, Topology, pick_core, v1, v2
from mqttmesh.cluster.forwarding import Inbox, Outbox


# -- Topology ---------------------------------------------------------------------------------

def _view(**incarnations: int) -> Membership:
    m = Membership("c1@h", "core")
    for name, inc in incarnations.items():
        m.admit(name.replace("_", "@"), "replicant", inc - 1)
    return m


def test_core_of_follows_the_newest_attachment_only():
    m = _view(r1_h=1)
    t = Topology(m.incarnation)
    assert t.report("c1@h", {"r1@h": 1})
    assert t.core_of("r1@h") == "c1@h"
    # r1 fails over to c2: c2 admits it with a higher incarnation
    m.admit("r1@h", "replicant", 1)
    assert m.incarnation("r1@h") == 2
    t.report("c2@h", {"r1@h": 2})
    assert t.core_of("r1@h") == "c2@h"
    # a late report of the old attachment (c1 has not noticed yet) does not win
    t.report("c1@h", {"r1@h": 1})
    assert t.core_of("r1@h") == "c2@h"
    assert t.replicants_of("c1@h") == []
    assert t.attachments() == {"r1@h": "c2@h"}


def test_core_of_unknown_until_reported_and_after_forget():
    m = _view(r1_h=1)
    t = Topology(m.incarnation)
    assert t.core_of("r1@h") is None
    t.report("c1@h", {"r1@h": 1})
    assert not t.report("c1@h", {"r1@h": 1})  # no change
    t.forget("c1@h")
    assert t.core_of("r1@h") is None


def test_report_ignores_malformed_entries():
    m = _view(r1_h=1)
    t = Topology(m.incarnation)
    t.report("c1@h", {"r1@h": 1, 7: 1, "r2@h": "x"})  # type: ignore[dict-item]
    assert t.replicants_of("c1@h") == ["r1@h"]


@given(st.dictionaries(st.sampled_from(["c1@h", "c2@h", "c3@h"]),
                       st.integers(min_value=0, max_value=50), min_size=1))
def test_pick_core_takes_a_least_loaded_core(loads):
    chosen = pick_core(loads)
    assert loads[chosen] == min(loads.values())


def test_pick_core_spreads_ties_at_random():
    rng = random.Random(7)
    picks = Counter(pick_core({"c1@h": 0, "c2@h": 0, "c3@h": 1}, rng=rng)
                    for _ in range(200))
    assert set(picks) == {"c1@h", "c2@h"} and min(picks.values()) > 50


def test_pick_core_prefers_the_cores_of_our_cluster():
    # c1 left the cluster (our view has its tombstone) and serves nobody now: not chosen
    assert pick_core({"c1@h": 0, "c2@h": 5}, prefer=["c2@h", "c3@h"]) == "c2@h"
    assert pick_core({"c1@h": 0}, prefer=["c2@h"]) == "c1@h"  # better than nothing
    assert pick_core({}) is None


# -- wire v2 ----------------------------------------------------------------------------------

def test_v2_validates_v1_and_its_own_types():
    assert v2.validate([v1.HEARTBEAT]) == v1.HEARTBEAT
    assert v2.validate([v2.TOPOLOGY, "c@h", {"r@h": 2}, ["c@h"]]) == v2.TOPOLOGY
    inner = [v1.REQUEST, 1, "session.takeover", {}]
    assert v2.validate([v2.RELAY, "a@h", "b@h", inner]) == v2.RELAY


@pytest.mark.parametrize("msg", [
    [v2.RELAY, "a@h", "b@h", []],                                  # empty inner
    [v2.RELAY, "a@h", "b@h", [v1.HEARTBEAT]],                      # relayed heartbeat
    [v2.RELAY, "a@h", "b@h", [v2.RELAY, "a@h", "c@h", [v1.HEARTBEAT]]],  # nested relay
    [v2.RELAY, "a@h", "b@h", [v1.REQUEST, "x", "op", {}]],         # bad inner shape
    [v2.RELAY, "a@h", 3, [v1.HEARTBEAT]],                          # bad dst
    [v2.TOPOLOGY, "c@h", [], []],                                  # attached not a map
    [v2.TOPOLOGY, "c@h", {}],                                      # missing field
    [99],
])
def test_v2_refuses_malformed(msg):
    with pytest.raises(FrameError):
        v2.validate(msg)


def test_v1_does_not_know_v2_types():
    with pytest.raises(FrameError):
        v1.validate([v2.TOPOLOGY, "c@h", {}, []])


# -- route copies served by a core ------------------------------------------------------------

def test_replica_snapshot_is_a_complete_copy_or_nothing():
    t = RouteTable("c1@h", "e1")
    assert t.replica_snapshot("r1@h") is None
    t.apply_deltas("r1@h", "er", 1, [(1, "a/#"), (1, "b")])
    assert t.replica_snapshot("r1@h") == ("er", 2, ["a/#", "b"])
    t.apply_deltas("r1@h", "er", 5, [(1, "c")])  # a gap: the copy is incomplete now
    assert t.replica_snapshot("r1@h") is None
    t.add_local("own")
    assert t.replica_snapshot("c1@h") == ("e1", 1, ["own"])


# -- in-order forwarding over relayed paths ---------------------------------------------------

def test_inbox_never_skips_a_batch_lost_on_a_relay():
    inbox = Inbox()
    assert inbox.accept("r1@h", "s", 1)
    assert not inbox.accept("r1@h", "s", 3)  # 2 was lost on a hop that closed
    assert inbox.mark("r1@h", "s") == 1      # so only 1 is acknowledged
    assert inbox.accept("r1@h", "s", 2)      # the resend
    assert inbox.accept("r1@h", "s", 3)
    assert not inbox.accept("r1@h", "s", 2)  # a duplicate
    assert (inbox.gaps, inbox.duplicates) == (1, 1)
    assert inbox.accept("r1@h", "s", 0)      # QoS 0: never numbered


def test_inbox_new_stream_starts_at_one_first_contact_anywhere():
    inbox = Inbox()
    assert inbox.accept("a@h", "s1", 7)       # we restarted: take the stream as it is
    assert not inbox.accept("a@h", "s2", 2)   # a new stream must start at 1
    assert inbox.accept("a@h", "s2", 1)
    assert inbox.mark("a@h", "s1") == 0 and inbox.mark("a@h", "s2") == 1


def test_outbox_restarts_its_stream_after_dropping_while_unreachable():
    box = Outbox("e.1", max_pending=2)
    for i in range(3):
        box.add([f"m{i}"], 1)
        box.take(connected=False)  # three batches, one message each, limit 2
    assert box.dropped == 1
    assert box.stream != "e.1"       # a new stream: the receiver does not wait for the gap
    resent = box.resend()
    assert [m[2] for m in resent] == [1, 2]
    assert [m[3] for m in resent] == [[["m1"]], [["m2"]]]
    inbox = Inbox()
    inbox.accept("e@h", "e.1", 1)
    assert all(inbox.accept("e@h", m[1], m[2]) for m in resent)
    box.ack(inbox.mark("e@h", box.stream))
    assert box.unacked == 0 and box.head is None
