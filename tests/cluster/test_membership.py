"""Membership view: join/leave/force-leave, incarnations, merge convergence, persistence."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttmesh.cluster import Member, Membership, MemberStatus
from mqttmesh.errors import ClusterError

A, B, C = "a@127.0.0.1", "b@127.0.0.2", "c@127.0.0.3"


def cluster_of_three():
    a = Membership(A)
    a.admit(B)
    a.admit(C)
    b, c = Membership(B), Membership(C)
    b.adopt({m.name: m for m in a.view.values()})
    c.adopt({m.name: m for m in a.view.values()})
    return a, b, c


def test_standalone_status():
    a = Membership(A)
    assert a.status().running_nodes == (A,) and a.status().stopped_nodes == ()
    assert not a.clustered


def test_join_then_same_status_everywhere():
    a, b, c = cluster_of_three()
    for m, peers in ((a, (B, C)), (b, (A, C)), (c, (A, B))):
        for p in peers:
            m.mark_up(p)
    assert a.status() == b.status() == c.status()
    assert a.status().running_nodes == (A, B, C)


def test_down_node_is_stopped_and_autoclean_due():
    a, _, _ = cluster_of_three()
    a.mark_up(B)
    a.mark_up(C)
    a.mark_down(C, now=100.0)
    assert a.status().stopped_nodes == (C,)
    assert a.autoclean_due(105.0, 10.0) == []
    assert a.autoclean_due(110.0, 10.0) == [C]
    a.mark_up(C)
    assert a.autoclean_due(200.0, 10.0) == []


def test_join_itself_refused():
    with pytest.raises(ClusterError, match="itself"):
        Membership(A).admit(A)


def test_stale_member_cannot_resurrect_a_left_node():
    a, b, c = cluster_of_three()
    stale = dict(b.view)  # b's view before the leave
    a.remove(C)
    assert not a.is_member(C)
    a.merge(stale.values())  # gossip from a node that missed the leave
    assert not a.is_member(C)
    b.merge(a.view.values())
    assert not b.is_member(C)


def test_rejoin_after_leave_gets_higher_incarnation():
    a, _, _ = cluster_of_three()
    left = a.remove(C)
    again = a.admit(C)
    assert again.incarnation > left.incarnation and a.is_member(C)


def test_remove_unknown_refused():
    with pytest.raises(ClusterError, match="not a member"):
        Membership(A).remove(B)


def test_reset_makes_standalone_with_higher_own_incarnation():
    a, _, _ = cluster_of_three()
    before = a.incarnation(A)
    a.reset()
    assert a.members() == [A] and a.incarnation(A) == before + 1


def test_tie_left_wins():
    m = Member(B, 3, MemberStatus.LEFT)
    assert m.beats(Member(B, 3, MemberStatus.MEMBER))
    assert not Member(B, 3, MemberStatus.MEMBER).beats(m)


def test_json_round_trip_and_name_check():
    a, _, _ = cluster_of_three()
    a.remove(C)
    text = a.to_json()
    b = Membership.from_json(text, A)
    assert b.view == a.view
    with pytest.raises(ClusterError, match="belongs to node"):
        Membership.from_json(text, B)
    with pytest.raises(ClusterError, match="corrupt"):
        Membership.from_json("{", A)


def test_from_wire_rejects_garbage():
    with pytest.raises(ClusterError):
        Membership.from_wire({"x": [1, "bogus", "core"]})
    with pytest.raises(ClusterError):
        Membership.from_wire({"x": 5})


entries = st.lists(st.builds(
    Member, st.sampled_from([A, B, C]), st.integers(1, 4),
    st.sampled_from(list(MemberStatus))), max_size=8)


@given(st.lists(entries, min_size=1, max_size=4))
def test_merge_is_order_independent(batches):
    results = []
    for order in itertools.permutations(batches):
        m = Membership("z@127.0.0.9")
        for batch in order:
            m.merge(batch)
            m.merge(batch)  # idempotent
        results.append(m.view)
    assert all(r == results[0] for r in results)
