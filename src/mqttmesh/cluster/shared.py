"""Shared subscriptions across the cluster: (group, real filter) -> nodes, and the node pick.

Theory of operation
-------------------
Each node is the single writer of its own set of shared groups (a group with at least one
local member: the broker's ``shared_added`` / ``shared_removed``) and ships the whole set,
numbered by a per-process ``(epoch, version)``, to every member on each change and on every
link start; a replica keeps the newest set per node (full state, so lost or reordered
updates converge on the next one). The node that accepts a publish matches its topic
against every replicated group filter and, per matching group, picks ONE node among those
with members (strategy below), then that node picks one of its local members
(``broker.dispatch_shared``): each message reaches exactly one member cluster-wide.

Node pick per ``mqtt.shared_subscription_strategy``: ``random``; ``round_robin`` (per group);
``sticky`` (keep the last node while it still has members); ``hash_clientid`` /
``hash_topic`` (crc32 of the publisher's client id / the topic); ``local`` (this node if it
has a member, else random).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable

from mqttmesh.broker import TopicTrie

__all__ = ["SharedTable"]


class SharedTable:
    """Replicated shared groups and the node pick (sans-IO)."""

    def __init__(self, node: str, strategy: str, rng: random.Random | None = None) -> None:
        self.node = node
        self.strategy = strategy
        self._random = rng or random.Random()
        self._sets: dict[str, frozenset[tuple[str, str]]] = {}
        self._versions: dict[str, tuple[str, int]] = {}
        self._trie: TopicTrie[tuple[str, dict[str, set[str]]]] = TopicTrie()
        self._rr: dict[tuple[str, str], int] = {}
        self._sticky: dict[tuple[str, str], str] = {}

    def __bool__(self) -> bool:
        return len(self._trie) > 0

    def nodes(self) -> list[str]:
        return sorted(self._sets)

    def groups_of(self, node: str) -> frozenset[tuple[str, str]]:
        return self._sets.get(node, frozenset())

    def set_node(self, node: str, groups: Iterable[tuple[str, str]],
                 version: tuple[str, int] | None = None) -> bool:
        """Replace ``node``'s groups (ignored if ``version`` is not newer in its epoch)."""
        if version is not None:
            known = self._versions.get(node)
            if known is not None and known[0] == version[0] and known[1] >= version[1]:
                return False
            self._versions[node] = version
        new = frozenset(groups)
        old = self._sets.get(node, frozenset())
        for group, flt in old - new:
            found = self._trie.get(flt)
            entry = found[1] if found is not None else None
            if entry is not None and group in entry:
                entry[group].discard(node)
                if not entry[group]:
                    del entry[group]
                if not entry:
                    self._trie.remove(flt)
        for group, flt in new - old:
            found = self._trie.get(flt)
            if found is None:
                found = (flt, {})
                self._trie.insert(flt, found)
            entry = found[1]
            entry.setdefault(group, set()).add(node)
        if new:
            self._sets[node] = new
        else:
            self._sets.pop(node, None)
        return True

    def drop_node(self, node: str) -> None:
        self.set_node(node, ())
        self._versions.pop(node, None)

    def picks(self, topic: str, sender: str | None, up: set[str]
              ) -> list[tuple[str, str, str]]:
        """``(group, real filter, node)`` for every shared group matching ``topic``: the
        one node (among this node and the ``up`` ones) that delivers to a member."""
        out = []
        for flt, entry in self._trie.match(topic):
            for group, nodes in entry.items():
                candidates = sorted(n for n in nodes if n == self.node or n in up)
                if not candidates:
                    continue
                out.append((group, flt, self._pick(group, flt, candidates, topic, sender)))
        return out

    def pick_group(self, group: str, flt: str, topic: str, sender: str | None,
                   up: set[str]) -> str | None:
        """The node that delivers a message of ``group`` on ``flt`` (None: no member)."""
        found = self._trie.get(flt)
        nodes = found[1].get(group) if found is not None else None
        candidates = sorted(n for n in nodes or () if n == self.node or n in up)
        return self._pick(group, flt, candidates, topic, sender) if candidates else None

    def _pick(self, group: str, flt: str, nodes: list[str], topic: str,
              sender: str | None) -> str:
        if len(nodes) == 1:
            return nodes[0]
        s = self.strategy
        key = (group, flt)
        if s == "round_robin":
            n = self._rr.get(key, 0) % len(nodes)
            self._rr[key] = n + 1
            return nodes[n]
        if s == "sticky":
            last = self._sticky.get(key)
            if last not in nodes:
                last = self._sticky[key] = self._random.choice(nodes)
            return last
        if s == "hash_clientid":
            return nodes[zlib.crc32((sender or "").encode()) % len(nodes)]
        if s == "hash_topic":
            return nodes[zlib.crc32(topic.encode()) % len(nodes)]
        if s == "local" and self.node in nodes:
            return self.node
        return self._random.choice(nodes)

