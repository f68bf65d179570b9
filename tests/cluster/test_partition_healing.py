"""cluster.healing: autoclean tombstones on both sides of a split are undone on heal."""

from __future__ import annotations

from mqttmesh.cluster import Membership, MemberStatus
from mqttmesh.cluster.healing import Healer


def _cluster(names: list[str]) -> dict[str, Membership]:
    views = {n: Membership(n) for n in names}
    for n in names[1:]:
        views[names[0]].admit(n)
    for n in names[1:]:
        views[n].adopt(views[names[0]].view)
    return views


def _clean(view: Membership, healer: Healer, name: str) -> None:
    healer.record_clean(view.remove(name))


def _gossip(src: Membership, hsrc: Healer, dst: Membership, hdst: Healer) -> None:
    entries = Membership.from_wire(hsrc.gossip_view(src))
    if not dst.is_member(src.self_name):
        undo = hdst.readmit_sender(dst, src.self_name)
        if undo is None:
            return
        dst.merge([undo])
    dst.merge(hdst.plan_merge(dst, entries).entries)


def test_two_sides_cleaned_each_other_converge_to_one_cluster():
    names = ["a@h1", "b@h2", "c@h3", "d@h4"]
    views = _cluster(names)
    healers = {n: Healer() for n in names}
    # split {a, b} | {c, d}; every node cleans the other side
    for left, right in ((("a@h1", "b@h2"), ("c@h3", "d@h4")),
                        (("c@h3", "d@h4"), ("a@h1", "b@h2"))):
        for n in left:
            for m in right:
                _clean(views[n], healers[n], m)
    # the tombstones are not gossiped: a's gossip does not remove anyone on c
    assert "c@h3" not in healers["a@h1"].gossip_view(views["a@h1"])
    # heal: any order of gossip converges
    for _ in range(3):
        for s in names:
            for d in names:
                if s != d:
                    _gossip(views[s], healers[s], views[d], healers[d])
    for n in names:
        assert views[n].members() == sorted(names), n
    assert {tuple(sorted((k, v.incarnation) for k, v in views[n].view.items()))
            for n in names}.__len__() == 1


def test_operator_tombstone_is_final():
    names = ["a@h1", "b@h2", "c@h3"]
    views = _cluster(names)
    healers = {n: Healer() for n in names}
    tomb = views["a@h1"].remove("c@h3")  # ctl force-leave: gossiped, not undone
    views["b@h2"].merge([tomb])
    _gossip(views["c@h3"], healers["c@h3"], views["a@h1"], healers["a@h1"])
    assert not views["a@h1"].is_member("c@h3")
    assert healers["a@h1"].readmit_sender(views["a@h1"], "c@h3") is None


def test_autoheal_off_keeps_autoclean():
    names = ["a@h1", "b@h2"]
    views = _cluster(names)
    healer = Healer(autoheal=False)
    _clean(views["a@h1"], healer, "b@h2")
    assert healer.readmit_sender(views["a@h1"], "b@h2") is None
    assert views["a@h1"].view["b@h2"].status is MemberStatus.LEFT
