"""RetainedVersions: last writer wins by (ms, origin), tombstones, convergence."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from mqttmesh.cluster.retained import RetainedVersions


def test_local_stamps_never_go_back():
    v = RetainedVersions()
    s1 = v.local("t", 1000, "a@h.x", False)
    s2 = v.local("t", 500, "a@h.x", False)  # clock went back
    assert s2 > s1


def test_remote_older_or_equal_loses_tie_broken_by_node():
    v = RetainedVersions()
    v.local("t", 1000, "b@h.x", False)
    assert not v.remote("t", (999, "z@h.x"), False)
    assert not v.remote("t", (1000, "a@h.x"), False)
    assert v.remote("t", (1000, "c@h.x"), True)
    assert v.get("t") == ((1000, "c@h.x"), True)


def test_tombstones_purged_after_ttl_and_unversioned_lowest():
    v = RetainedVersions(tombstone_ttl_ms=10)
    v.local("gone", 100, "a@h.x", True)
    v.local("kept", 100, "a@h.x", False)
    assert v.purge_tombstones(200) == 1 and v.get("gone") is None and v.get("kept")
    assert v.adopt_unversioned("old", "a@h.x") == (0, "a@h.x")
    assert v.remote("old", (1, "a@h.x"), False)


writes = st.lists(st.tuples(st.sampled_from(["t1", "t2"]), st.integers(0, 5),
                            st.sampled_from(["a", "b", "c"]), st.booleans()), max_size=8)


@given(writes)
def test_merge_order_independent(ws):
    finals = []
    for order in itertools.islice(itertools.permutations(ws), 24):
        v = RetainedVersions()
        for topic, ms, node, deleted in order:
            v.remote(topic, (ms, node), deleted)
        finals.append(sorted(v.items()))
    assert all(f == finals[0] for f in finals)
