"""Versions of replicated retained messages: a last-writer-wins register per topic.

Theory of operation
-------------------
Any node may set or delete the retained message of a topic, so retained messages are
multi-writer state; each topic's latest write wins, by ``Stamp = (wall-clock ms, origin
node)`` (the node name breaks ties, so every node picks the same winner). A local write is
stamped ``max(now_ms, previous_ms + 1)``: a node never stamps a topic below what it has seen,
even when its clock is behind. Deletes are kept as tombstones (purged after
``tombstone_ttl``) so a node that was away cannot resurrect a deleted message by sending its
old copy. Merging is commutative and idempotent: exchanging full sets on every link start
converges every node to the same store.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["RetainedVersions", "Stamp"]

Stamp = tuple[int, str]


class RetainedVersions:
    """topic -> (stamp, deleted) of the retained store this node holds."""

    def __init__(self, tombstone_ttl_ms: int = 24 * 3600 * 1000) -> None:
        self.tombstone_ttl_ms = tombstone_ttl_ms
        self._versions: dict[str, tuple[Stamp, bool]] = {}

    def __len__(self) -> int:
        return len(self._versions)

    def get(self, topic: str) -> tuple[Stamp, bool] | None:
        return self._versions.get(topic)

    def local(self, topic: str, now_ms: int, node: str, deleted: bool) -> Stamp:
        """Stamp a write made on this node."""
        current = self._versions.get(topic)
        ms = now_ms if current is None else max(now_ms, current[0][0] + 1)
        stamp = (ms, node)
        self._versions[topic] = (stamp, deleted)
        return stamp

    def remote(self, topic: str, stamp: Stamp, deleted: bool) -> bool:
        """A write from another node: True if it wins (apply it to the store)."""
        current = self._versions.get(topic)
        if current is not None and current >= (stamp, deleted):
            return False  # (a delete wins an exact tie: a total order, so merges commute)
        self._versions[topic] = (stamp, deleted)
        return True

    def adopt_unversioned(self, topic: str, node: str) -> Stamp:
        """A message already in the store without a version (before the cluster started):
        the lowest stamp, so any real write wins over it."""
        current = self._versions.get(topic)
        if current is not None:
            return current[0]
        stamp = (0, node)
        self._versions[topic] = (stamp, False)
        return stamp

    def items(self) -> Iterator[tuple[str, Stamp, bool]]:
        for topic, (stamp, deleted) in list(self._versions.items()):
            yield topic, stamp, deleted

    def purge_tombstones(self, now_ms: int) -> int:
        old = [t for t, (stamp, deleted) in self._versions.items()
               if deleted and now_ms - stamp[0] > self.tombstone_ttl_ms]
        for topic in old:
            del self._versions[topic]
        return len(old)

    def clear(self) -> None:
        self._versions.clear()
