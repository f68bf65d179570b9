"""Membership: who is in the cluster (replicated view) and who is up (local observation).

Theory of operation
-------------------
The *view* maps every node ever seen to ``Member(name, incarnation, status, role)`` with
status ``member`` or ``left``. Views are merged entry by entry, the higher incarnation
winning, ``left`` winning a tie (a state-based CRDT: merge is commutative, associative and
idempotent, so gossip in any order converges). Every change bumps the incarnation:

* join: the member that accepts a joiner writes ``(joiner, max(known, claimed) + 1, member)``;
* leave / force-leave: ``(node, incarnation + 1, left)``: a tombstone, kept so a stale
  ``member`` entry gossiped later by a node that missed the leave cannot resurrect it;
* a node that leaves resets its own view to itself alone, with a higher incarnation.

Liveness is not replicated: each node observes its links (``mark_up`` / ``mark_down``) and
``status()`` answers ``running_nodes`` / ``stopped_nodes`` from the members of the view and
those observations, so every connected node gives the same answer. ``autoclean_due(now,
after)`` names members down for longer than ``after`` seconds.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mqttmesh.errors import ClusterError

__all__ = ["Membership", "Member", "MemberStatus", "ClusterStatus"]


class MemberStatus(str, enum.Enum):
    MEMBER = "member"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    incarnation: int
    status: MemberStatus
    role: str = "core"

    def beats(self, other: Member) -> bool:
        """Whether this entry wins over ``other`` for the same node in a merge."""
        if self.incarnation != other.incarnation:
            return self.incarnation > other.incarnation
        return self.status is MemberStatus.LEFT and other.status is MemberStatus.MEMBER


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    running_nodes: tuple[str, ...]
    stopped_nodes: tuple[str, ...]


class Membership:
    """The view of one node.

    Args:
        self_name: this node's name.
        role: this node's role.
        incarnation: this node's own starting incarnation.
    """

    def __init__(self, self_name: str, role: str = "core", incarnation: int = 1) -> None:
        self.self_name = self_name
        self.role = role
        self.view: dict[str, Member] = {
            self_name: Member(self_name, incarnation, MemberStatus.MEMBER, role)}
        self._up: set[str] = set()
        self._down_since: dict[str, float] = {}

    # -- queries ---------------------------------------------------------------------------
    def members(self) -> list[str]:
        """Names of the members (status ``member``), sorted, this node included."""
        return sorted(n for n, m in self.view.items() if m.status is MemberStatus.MEMBER)

    def peers(self) -> list[str]:
        """Members other than this node."""
        return [n for n in self.members() if n != self.self_name]

    def is_member(self, name: str) -> bool:
        m = self.view.get(name)
        return m is not None and m.status is MemberStatus.MEMBER

    @property
    def clustered(self) -> bool:
        """Whether this node has any other member."""
        return bool(self.peers())

    def role_of(self, name: str) -> str:
        """The role of ``name`` in the view (``core`` if unknown)."""
        m = self.view.get(name)
        return m.role if m is not None else "core"

    def members_of_role(self, role: str) -> list[str]:
        """Members with ``role``, sorted, this node included if it has it."""
        return sorted(n for n, m in self.view.items()
                      if m.status is MemberStatus.MEMBER and m.role == role)

    def incarnation(self, name: str) -> int:
        m = self.view.get(name)
        return m.incarnation if m is not None else 0

    def is_up(self, name: str) -> bool:
        return name == self.self_name or name in self._up

    def status(self) -> ClusterStatus:
        running = [n for n in self.members() if self.is_up(n)]
        stopped = [n for n in self.members() if not self.is_up(n)]
        return ClusterStatus(tuple(running), tuple(stopped))

    # -- liveness (local) ------------------------------------------------------------------
    def mark_up(self, name: str) -> bool:
        """The link to ``name`` is alive; True if that is news."""
        self._down_since.pop(name, None)
        if name in self._up:
            return False
        self._up.add(name)
        return True

    def mark_down(self, name: str, now: float) -> bool:
        """The link to ``name`` failed; True if that is news."""
        self._down_since.setdefault(name, now)
        if name not in self._up:
            return False
        self._up.discard(name)
        return True

    def down_since(self, name: str) -> float | None:
        """When ``name`` was marked down (None: up, or never observed)."""
        return self._down_since.get(name)

    def autoclean_due(self, now: float, after: float) -> list[str]:
        """Members down (or never seen up since ``mark_down``) for at least ``after`` s."""
        return sorted(n for n, since in self._down_since.items()
                      if self.is_member(n) and n != self.self_name and now - since >= after)

    # -- changes ---------------------------------------------------------------------------
    def admit(self, name: str, role: str = "core", claimed_incarnation: int = 0) -> Member:
        """Accept ``name`` as a member (we are the member it asked to join)."""
        if name == self.self_name:
            raise ClusterError("a node cannot join itself")
        inc = max(self.incarnation(name), claimed_incarnation) + 1
        member = Member(name, inc, MemberStatus.MEMBER, role)
        self.view[name] = member
        return member

    def remove(self, name: str) -> Member:
        """Leave / force-leave of ``name``: a tombstone with a higher incarnation."""
        current = self.view.get(name)
        if current is None or current.status is not MemberStatus.MEMBER:
            raise ClusterError(f"{name} is not a member of the cluster")
        member = Member(name, current.incarnation + 1, MemberStatus.LEFT, current.role)
        self.view[name] = member
        self._up.discard(name)
        self._down_since.pop(name, None)
        return member

    def reset(self, min_incarnation: int = 0) -> None:
        """Become standalone: forget every other node, bump our own incarnation."""
        inc = max(self.incarnation(self.self_name), min_incarnation) + 1
        self.view = {self.self_name: Member(self.self_name, inc, MemberStatus.MEMBER,
                                            self.role)}
        self._up.clear()
        self._down_since.clear()

    def adopt(self, view: Mapping[str, Member]) -> None:
        """Take a whole view as ours (after a join was accepted): replaces what we had."""
        self.view = {}
        self._up.clear()
        self._down_since.clear()
        self.merge(view.values())

    def merge(self, entries: Iterable[Member]) -> list[Member]:
        """Merge gossiped entries; return those that changed our view."""
        changed: list[Member] = []
        for entry in entries:
            current = self.view.get(entry.name)
            if current is None or entry.beats(current):
                self.view[entry.name] = entry
                changed.append(entry)
                if entry.status is MemberStatus.LEFT:
                    self._up.discard(entry.name)
                    self._down_since.pop(entry.name, None)
        return changed

    # -- encoding --------------------------------------------------------------------------
    def to_wire(self) -> dict[str, list[Any]]:
        return {n: [m.incarnation, m.status.value, m.role] for n, m in self.view.items()}

    @staticmethod
    def from_wire(data: Mapping[Any, Any]) -> list[Member]:
        """Parse a gossiped view.

        Raises:
            ClusterError: malformed.
        """
        out = []
        try:
            for name, (inc, status, role) in data.items():
                if not isinstance(name, str) or not isinstance(inc, int) \
                        or not isinstance(role, str):
                    raise ValueError
                out.append(Member(name, inc, MemberStatus(status), role))
        except (ValueError, TypeError):
            raise ClusterError("malformed membership view") from None
        return out

    def to_json(self) -> str:
        return json.dumps({"node": self.self_name, "view": self.to_wire()}, indent=1,
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str, self_name: str, role: str = "core") -> Membership:
        """Load a persisted view (``cluster.json``).

        Raises:
            ClusterError: malformed, or written by a node of another name.
        """
        try:
            data = json.loads(text)
            node = data["node"]
            entries = cls.from_wire(data["view"])
        except (ValueError, KeyError, TypeError):
            raise ClusterError("cluster.json is corrupt") from None
        if node != self_name:
            raise ClusterError(f"cluster.json belongs to node {node}, not {self_name}")
        m = cls(self_name, role)
        m.view = {}
        m.merge(entries)
        own = m.view.get(self_name)
        if own is None or own.status is not MemberStatus.MEMBER:
            m.reset(own.incarnation if own else 0)
        elif own.role != role:
            m.view[self_name] = Member(self_name, own.incarnation, own.status, role)
        return m
