"""RouteTable: topic filter -> nodes, replicated by single-writer versioned delta streams.

Theory of operation
-------------------
Algorithm: **single-writer log shipping with per-origin sequence numbers, gap detection and
digest-based anti-entropy** (each node owns the only copy it writes; peers hold replicas).

* Each node is the only writer of its own routes (the real filters with a local
  subscriber). Every change gets the next version of that node's stream: ``(epoch,
  version)``, where ``epoch`` is fresh each time the node process starts, so a restarted
  node never reuses a version with other meaning.
* Deltas (``add`` / ``delete`` a filter at version v) are shipped in order to every peer.
  A replica applies a batch starting at ``version + 1`` of what it holds; a batch entirely at
  or below it is a duplicate and ignored; a batch starting above it (or of another epoch)
  is a *gap*: the replica asks the origin for a snapshot and ignores deltas of that origin
  until the snapshot arrives (the snapshot is newer than any delta it skipped).
* Anti-entropy: a node sends ``digest = (epoch, version, hash)`` of its own routes on every
  link (re)connection and periodically; a replica whose copy differs asks for a snapshot.
  ``hash`` is the XOR of a 64-bit BLAKE2b of every filter, order independent and updated
  in O(1) per delta.
* Matching ignores the routes of nodes marked down (at once); ``purge`` drops them when
  the node leaves or is force-left.

Invariants (docs/cluster.md): a replica of node N is always a prefix of N's own history at
some version (never a mix); two replicas of N at the same (epoch, version) are equal;
``matching(topic)`` never returns this node itself, a down node, or a purged node.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from mqttmesh.broker import TopicTrie
from mqttmesh.protocol import matches
from mqttmesh.cluster.wire.v1 import OP_ADD, OP_DELETE

__all__ = ["RouteTable", "Delta", "Digest", "ApplyResult", "filter_hash"]


def filter_hash(topic_filter: str) -> int:
    """64-bit hash of a filter, stable across processes (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(topic_filter.encode(), digest_size=8).digest(),
                          "big")


@dataclass(frozen=True, slots=True)
class Delta:
    version: int
    op: int          # OP_ADD | OP_DELETE
    topic_filter: str


@dataclass(frozen=True, slots=True)
class Digest:
    epoch: str
    version: int
    hash: int
    count: int


class ApplyResult(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    GAP = "gap"            # ask the origin for a snapshot


class _Replica:
    __slots__ = ("epoch", "version", "filters", "hash", "awaiting_snapshot")

    def __init__(self, epoch: str = "", version: int = 0) -> None:
        self.epoch = epoch
        self.version = version
        self.filters: set[str] = set()
        self.hash = 0
        self.awaiting_snapshot = False

    def digest(self) -> Digest:
        return Digest(self.epoch, self.version, self.hash, len(self.filters))


class RouteTable:
    """The cluster's route table as seen from one node.

    Args:
        self_name: this node.
        epoch: this process's route stream epoch (unique per start).
    """

    def __init__(self, self_name: str, epoch: str) -> None:
        self.self_name = self_name
        self._own = _Replica(epoch, 0)
        self._replicas: dict[str, _Replica] = {}
        self._trie: TopicTrie[set[str]] = TopicTrie()
        self._down: set[str] = set()

    # -- own routes (the only writer) ------------------------------------------------------
    @property
    def epoch(self) -> str:
        return self._own.epoch

    @property
    def version(self) -> int:
        return self._own.version

    def own_filters(self) -> set[str]:
        return set(self._own.filters)

    def add_local(self, topic_filter: str) -> Delta | None:
        """A local route appeared; the delta to ship (None if already there)."""
        if topic_filter in self._own.filters:
            return None
        return self._own_change(OP_ADD, topic_filter)

    def remove_local(self, topic_filter: str) -> Delta | None:
        """A local route disappeared; the delta to ship (None if it was not there)."""
        if topic_filter not in self._own.filters:
            return None
        return self._own_change(OP_DELETE, topic_filter)

    def _own_change(self, op: int, topic_filter: str) -> Delta:
        own = self._own
        own.version += 1
        _apply_op(own, op, topic_filter)
        # Own routes are not indexed in the trie: match() never returns this node and the
        # broker has its own index of them (keeps a local subscribe O(1) here).
        return Delta(own.version, op, topic_filter)

    def own_digest(self) -> Digest:
        return self._own.digest()

    def own_snapshot(self) -> tuple[str, int, list[str]]:
        """(epoch, version, filters) of our own routes."""
        return self._own.epoch, self._own.version, sorted(self._own.filters)

    # -- replicas of other nodes -----------------------------------------------------------
    def apply_deltas(self, origin: str, epoch: str, first_version: int,
                     ops: Iterable[tuple[int, str]]) -> ApplyResult:
        """Apply a batch of deltas of ``origin`` numbered from ``first_version``."""
        if origin == self.self_name:
            return ApplyResult.DUPLICATE
        rep = self._replicas.get(origin)
        if rep is None:
            rep = self._replicas[origin] = _Replica()
        ops = list(ops)
        last = first_version + len(ops) - 1
        if epoch != rep.epoch and first_version == 1:
            # A new stream (the origin restarted) told from its start: nothing is missing.
            self.apply_snapshot(origin, epoch, 0, ())
            rep = self._replicas[origin]
        if rep.awaiting_snapshot:
            return ApplyResult.GAP if rep.epoch != epoch or last > rep.version \
                else ApplyResult.DUPLICATE
        if epoch != rep.epoch or first_version > rep.version + 1:
            rep.awaiting_snapshot = True
            return ApplyResult.GAP
        if last <= rep.version:
            return ApplyResult.DUPLICATE
        for version, (op, topic_filter) in enumerate(ops, first_version):
            if version <= rep.version:
                continue  # the overlapping head of a partly duplicated batch
            if _apply_op(rep, op, topic_filter):
                self._index(origin, op, topic_filter)
            rep.version = version
        return ApplyResult.APPLIED

    def apply_snapshot(self, origin: str, epoch: str, version: int,
                       filters: Iterable[str]) -> bool:
        """Replace the replica of ``origin``; False if older than what we hold."""
        if origin == self.self_name:
            return False
        rep = self._replicas.get(origin)
        if rep is not None and rep.epoch == epoch and version < rep.version \
                and not rep.awaiting_snapshot:
            return False
        new = set(filters)
        old = rep.filters if rep is not None else set()
        for topic_filter in old - new:
            self._index(origin, OP_DELETE, topic_filter)
        for topic_filter in new - old:
            self._index(origin, OP_ADD, topic_filter)
        fresh = _Replica(epoch, version)
        fresh.filters = new
        h = 0
        for topic_filter in new:
            h ^= filter_hash(topic_filter)
        fresh.hash = h
        self._replicas[origin] = fresh
        return True

    def replica_snapshot(self, origin: str) -> tuple[str, int, list[str]] | None:
        """(epoch, version, filters) of our copy of ``origin`` (ours included), to relay to
        nodes that get ``origin``'s routes through us; None if we hold no complete copy."""
        if origin == self.self_name:
            return self.own_snapshot()
        rep = self._replicas.get(origin)
        if rep is None or rep.awaiting_snapshot:
            return None
        return rep.epoch, rep.version, sorted(rep.filters)

    def needs_resync(self, origin: str, digest: Digest) -> bool:
        """Compare ``origin``'s own digest with our replica of it."""
        if origin == self.self_name:
            return False
        rep = self._replicas.get(origin)
        if rep is None:
            return True
        if rep.awaiting_snapshot:
            return True
        if rep.epoch != digest.epoch or rep.version < digest.version:
            return True
        return rep.version == digest.version and rep.hash != digest.hash

    def replica_digest(self, origin: str) -> Digest | None:
        if origin == self.self_name:
            return self.own_digest()
        rep = self._replicas.get(origin)
        return rep.digest() if rep is not None else None

    def digests(self) -> dict[str, Digest]:
        """Every copy we hold, ours included (for ``routes verify``)."""
        out = {self.self_name: self.own_digest()}
        for name, rep in self._replicas.items():
            out[name] = rep.digest()
        return out

    def filters_of(self, node: str) -> set[str]:
        if node == self.self_name:
            return set(self._own.filters)
        rep = self._replicas.get(node)
        return set(rep.filters) if rep is not None else set()

    def nodes(self) -> list[str]:
        """Nodes we hold routes for (this node included)."""
        return sorted({self.self_name, *self._replicas})

    def purge(self, node: str) -> int:
        """Forget every route of ``node`` (it left); returns how many."""
        rep = self._replicas.pop(node, None)
        self._down.discard(node)
        if rep is None:
            return 0
        for topic_filter in rep.filters:
            self._index(node, OP_DELETE, topic_filter)
        return len(rep.filters)

    def wipe_others(self) -> int:
        """Forget every replica (this node joins another cluster); returns routes dropped."""
        return sum(self.purge(node) for node in list(self._replicas))

    # -- liveness and matching -------------------------------------------------------------
    def set_down(self, node: str, down: bool) -> None:
        """Routes of a down node are kept but not matched."""
        if down:
            self._down.add(node)
        else:
            self._down.discard(node)

    def match(self, topic: str) -> set[str]:
        """Remote nodes (up, not this one) with a route matching ``topic``."""
        out: set[str] = set()
        if not self._replicas:
            return out  # standalone: the publish hot path pays one test
        for nodes in self._trie.match(topic):
            out |= nodes
        out.discard(self.self_name)
        if self._down:
            out -= self._down
        return out

    def explain(self, topic: str) -> list[tuple[str, list[str]]]:
        """Every filter matching ``topic`` with the nodes holding it (down ones included)."""
        found: dict[str, set[str]] = {}
        for topic_filter, nodes in self._trie.items():
            if matches(topic_filter, topic):
                found[topic_filter] = set(nodes)
        for topic_filter in self._own.filters:
            if matches(topic_filter, topic):
                found.setdefault(topic_filter, set()).add(self.self_name)
        return sorted((f, sorted(n)) for f, n in found.items())

    def down_nodes(self) -> set[str]:
        return set(self._down)

    def __len__(self) -> int:
        """Number of distinct filters routed anywhere."""
        return len(self._trie) + sum(1 for f in self._own.filters if f not in self._trie)

    def _index(self, node: str, op: int, topic_filter: str) -> None:
        nodes = self._trie.get(topic_filter)
        if op == OP_ADD:
            if nodes is None:
                self._trie.insert(topic_filter, {node})
            else:
                nodes.add(node)
        elif nodes is not None:
            nodes.discard(node)
            if not nodes:
                self._trie.remove(topic_filter)


def _apply_op(rep: _Replica, op: int, topic_filter: str) -> bool:
    """Apply one op to a replica's set; True if the set changed."""
    if op == OP_ADD:
        if topic_filter in rep.filters:
            return False
        rep.filters.add(topic_filter)
    else:
        if topic_filter not in rep.filters:
            return False
        rep.filters.discard(topic_filter)
    rep.hash ^= filter_hash(topic_filter)
    return True
