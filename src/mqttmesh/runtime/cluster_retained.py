"""Replication of retained messages between members (see ``cluster.retained``).

A retained publish on this node (seen by the ``forward`` hook: the broker has already stored
it) is stamped and sent to every member, batched per loop iteration, on our distribution
links. Every link start sends our whole versioned set (tombstones included), so a joiner,
a restarted node or the two sides of a healed partition converge. ``$SYS/`` topics are
node-local and not replicated. A joining node wipes its store first (``wipe``).
Every version applied here is also written to ``data_dir/retained.db`` (``retained_store``)
and loaded back at start, before any link, so retained messages survive restarts.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import v1
from mqttmesh.cluster.forwarding import decode_message, encode_message
from mqttmesh.cluster.retained import RetainedVersions
from mqttmesh.runtime.retained_store import RetainedDB

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService
    from mqttmesh.runtime.peer_link import PeerLink

__all__ = ["RetainedReplicator"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class RetainedReplicator:
    def __init__(self, service: ClusterService) -> None:
        self.service = service
        self.versions = RetainedVersions()
        self._pending: list[list[Any]] = []
        self._scheduled = False
        self.db: RetainedDB | None = RetainedDB(service.data_dir) if service.data_dir else None

    def load_persisted(self) -> int:
        """Put the persisted retained messages (and versions) back; returns how many."""
        store = self._store()
        if self.db is None or store is None:
            return 0
        now = asyncio.get_running_loop().time()
        wall = time.time()
        count = 0
        for topic, ms, origin, deleted, wire, expires in self.db.load():
            if not self.versions.remote(topic, (ms, origin), deleted) or deleted:
                continue
            if expires is not None and expires <= wall:
                continue
            try:
                fields = list(wire)
                fields[7] = None if expires is None else expires - wall
                message = decode_message(fields, now)
            except (ValueError, TypeError, IndexError):
                continue
            message.retain = True
            store.set(message)
            count += 1
        return count

    def _persist(self, topic: str, stamp: tuple[int, str], wire: Any) -> None:
        if self.db is not None:
            ttl = wire[7] if wire is not None else None
            self.db.put(topic, stamp[0], stamp[1], wire is None, wire, ttl)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def _store(self) -> Any:
        broker = self.service.broker
        return getattr(broker, "retained", None) if broker is not None else None

    def local(self, message: Any) -> None:
        """A retained message (or delete: empty payload) published on this node."""
        if message.topic.startswith("$SYS/"):
            return
        s = self.service
        deleted = not message.payload
        stamp = self.versions.local(message.topic, _now_ms(), s.name, deleted)
        now = s.loop.time() if s.loop is not None else 0.0
        encoded = None if deleted else encode_message(message, now)
        self._persist(message.topic, stamp, encoded)
        if s.loop is None or not s.membership.clustered:
            return
        self._pending.append([message.topic, stamp[0], stamp[1], encoded])
        if not self._scheduled:
            self._scheduled = True
            s.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            s = self.service
            msg = [v1.RETAINED, batch]
            # a replicant tells its core only, which passes on what wins (``on_message``)
            for link in (s.stream_links() if s.uplink is not None else s.up_links()):
                link.send(msg)

    def full_set(self) -> list[Any]:
        """RETAINED message with everything we hold (sent on every link start)."""
        s = self.service
        store = self._store()
        now = s.loop.time() if s.loop is not None else 0.0
        if store is not None:
            for message in store:
                if not message.topic.startswith("$SYS/"):
                    self.versions.adopt_unversioned(message.topic, s.name)
        items: list[list[Any]] = []
        for topic, stamp, deleted in self.versions.items():
            message = store.get(topic) if store is not None and not deleted else None
            encoded = None if message is None else encode_message(message, now)
            items.append([topic, stamp[0], stamp[1], encoded])
        return [v1.RETAINED, items]

    def on_message(self, link: PeerLink, items: list[Any]) -> None:
        """RETAINED from a member: apply what wins."""
        store = self._store()
        now = asyncio.get_running_loop().time()
        s = self.service
        # from one of our replicants (its writes, or its full set after it was detached):
        # what wins here goes on to every other node, as the replicant reaches only us
        relay = s.uplink is None and s.replicants.links.get(link.peer.name) is link
        won: list[Any] = []
        for item in items:
            if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str)
                    and isinstance(item[1], int) and isinstance(item[2], str)):
                continue
            topic, ms, origin, encoded = item
            if topic.startswith("$SYS/"):
                continue
            deleted = encoded is None
            if not self.versions.remote(topic, (ms, origin), deleted) or store is None:
                continue
            if relay:
                won.append(item)
            if deleted:
                store.delete(topic)
                self._persist(topic, (ms, origin), None)
                continue
            try:
                message = decode_message(encoded, now)
            except (ValueError, TypeError):
                continue
            if message.topic == topic:
                message.retain = True
                store.set(message)
                self._persist(topic, (ms, origin), encoded)
        if won:
            msg = [v1.RETAINED, won]
            for other in s.up_links():
                if other.peer.name != link.peer.name:
                    other.send(msg)

    def wipe(self) -> int:
        """Forget every retained message (this node joins a cluster); returns how many."""
        store = self._store()
        count = 0
        if store is not None:
            for message in store:
                if not message.topic.startswith("$SYS/"):
                    store.delete(message.topic)
                    count += 1
        self.versions.clear()
        if self.db is not None:
            self.db.wipe()
        return count

    def tick(self) -> None:
        now = _now_ms()
        self.versions.purge_tombstones(now)
        if self.db is not None:
            self.db.purge_tombstones(now - self.versions.tombstone_ttl_ms)
