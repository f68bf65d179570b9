"""Healing: merge the views of two sides of a healed partition without losing anyone.

Theory of operation
-------------------
Routes are node-owned (``cluster.routes``): every node is the only writer of its own routes
and every replica re-syncs by digest and snapshot when a link comes back. So healing a
partition never needs to pick a winner side or restart anyone (EMQX restarts the minority
side's applications because Mnesia tables have many writers): once the nodes agree on the
*membership* again, each replica converges to its owner. Only membership needs care.

Without autoclean nothing is lost in a split: views only gain entries, links reconnect, and
the view CRDT merges. The danger is **autoclean during a split**: each side writes a
tombstone for the nodes of the other side, and a tombstone wins over the member entry it
replaces, so on heal each side would tell the other "you were removed" (``BYE``) and the
cluster would stay split forever.

Rule: an autoclean tombstone is a *local* decision ("I have not heard from N for that long"),
not an operator's. So:

1. it is never gossiped (``gossip_view`` leaves it out): each node cleans on its own timer,
   and a node that still hears from N keeps it;
2. with ``cluster.autoheal`` on, it is undone as soon as N talks to us (``readmit_sender``:
   its view arrives, or our probe's authenticated link to it succeeds). Only direct
   contact counts: a member gossiping N as a member proves nothing (it may simply not have
   cleaned N yet; trusting it made a dead node flap between cleaned and re-admitted), so
   ``plan_merge`` never re-admits. Undoing writes ``(N, tombstone + 1, member)``, which
   beats the tombstone everywhere; every node that cleaned N did so at the same
   incarnation, so they all compute the same entry.

Operator tombstones (``leave``, ``force-leave``) are gossiped and final, as before. A node
cleaned wrongly (it was alive behind a partition) therefore comes back with its routes
re-synced; a node cleaned because it was really dead stays removed until it comes back, and
then it is merged back in with its data (its routes are its own; with autoheal off it gets
``BYE`` and goes standalone, as a force-left node does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mqttmesh.cluster.membership import Member, Membership, MemberStatus

__all__ = ["Healer", "HealPlan"]


@dataclass(frozen=True, slots=True)
class HealPlan:
    """What to merge from a gossiped view, and which cleaned nodes it brings back."""

    entries: list[Member]
    readmitted: list[str] = field(default_factory=list)


class Healer:
    """Autoclean tombstones of one node (local knowledge, not replicated).

    Args:
        autoheal: ``cluster.autoheal``.
    """

    def __init__(self, autoheal: bool = True) -> None:
        self.autoheal = autoheal
        self.cleaned: dict[str, int] = {}
        """node -> incarnation of the tombstone autoclean wrote for it here."""

    # -- queries ---------------------------------------------------------------------------
    def is_cleaned(self, membership: Membership, name: str) -> bool:
        """Whether ``name``'s current entry is the tombstone our autoclean wrote."""
        entry = membership.view.get(name)
        return (entry is not None and entry.status is MemberStatus.LEFT
                and self.cleaned.get(name) == entry.incarnation)

    def cleaned_nodes(self, membership: Membership) -> list[str]:
        """Nodes removed here by autoclean and not changed since (probe targets)."""
        return sorted(n for n in self.cleaned if self.is_cleaned(membership, n))

    # -- changes ---------------------------------------------------------------------------
    def record_clean(self, member: Member) -> None:
        """Autoclean wrote ``member`` (a tombstone)."""
        self.cleaned[member.name] = member.incarnation

    def readmission(self, membership: Membership, name: str) -> Member | None:
        """The entry that undoes our autoclean tombstone of ``name`` (None: nothing to undo,
        or autoheal is off)."""
        if not self.autoheal or not self.is_cleaned(membership, name):
            return None
        tomb = membership.view[name]
        return Member(name, tomb.incarnation + 1, MemberStatus.MEMBER, tomb.role)

    def readmit_sender(self, membership: Membership, sender: str) -> Member | None:
        """``sender`` talks to us although we cleaned it: it is alive; the entry to merge."""
        return self.readmission(membership, sender)

    def plan_merge(self, membership: Membership, entries: Iterable[Member]) -> HealPlan:
        """What to merge of a gossiped view. A member entry for a node we cleaned loses to
        our tombstone in the merge and is not a proof of life (rule 2): nothing is
        re-admitted here; the node comes back when it talks to us or our probe reaches it."""
        return HealPlan(list(entries), [])

    def gossip_view(self, membership: Membership) -> dict[str, list[Any]]:
        """Our view for the wire, without our autoclean tombstones (rule 1)."""
        wire = membership.to_wire()
        for name in self.cleaned_nodes(membership):
            wire.pop(name, None)
        return wire

    def forget_stale(self, membership: Membership) -> None:
        """Drop records whose tombstone was superseded (readmitted, rejoined)."""
        for name in [n for n in self.cleaned if not self.is_cleaned(membership, n)]:
            del self.cleaned[name]

    # -- persistence -----------------------------------------------------------------------
    def to_json_obj(self) -> dict[str, int]:
        return dict(self.cleaned)

    def load(self, data: Mapping[Any, Any]) -> None:
        self.cleaned = {k: v for k, v in data.items()
                        if isinstance(k, str) and isinstance(v, int)}
