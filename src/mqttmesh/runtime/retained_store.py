"""Retained messages persisted in ``node.data_dir/retained.db`` (stdlib sqlite3, WAL).

One row per topic with its last-writer-wins version ``(ms, origin)`` and the message (or a
tombstone), so a restarted node has its retained messages *and* their versions back before
its links start (a restart of every node keeps them; a stale peer cannot override them with
an older write). Writes never block the publish path: ``put`` only records the latest row
per topic in memory; a flush every ``FLUSH_INTERVAL`` s writes the batch in one transaction
on a single worker thread. ``close`` flushes synchronously (graceful stop); a crash loses
at most the last interval. Message expiry is stored as a wall-clock deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack

__all__ = ["RetainedDB", "FLUSH_INTERVAL"]

log = logging.getLogger("mqttmesh.cluster.retained")

FLUSH_INTERVAL = 0.1
_SCHEMA = """CREATE TABLE IF NOT EXISTS retained (
    topic TEXT PRIMARY KEY, ms INTEGER NOT NULL, origin TEXT NOT NULL,
    deleted INTEGER NOT NULL, message BLOB, expires REAL)"""

Row = tuple[str, int, str, bool, Any, float | None]
"""(topic, ms, origin, deleted, wire message without ttl | None, wall-clock expiry | None)"""


class RetainedDB:
    """The retained store's persistent copy (see the module docstring)."""

    def __init__(self, data_dir: str) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "retained.db")
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, str, bool, bytes | None, float | None]] = {}
        self._wipe = False
        self._purge_before: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="retained-db")
        self.writes = 0

    def load(self) -> list[Row]:
        rows = self._db.execute(
            "SELECT topic, ms, origin, deleted, message, expires FROM retained").fetchall()
        out: list[Row] = []
        for topic, ms, origin, deleted, blob, expires in rows:
            try:
                message = None if deleted or blob is None else msgpack.unpackb(blob, raw=False)
            except Exception:
                log.warning("unreadable retained row dropped", extra={"kv": {"topic": topic}})
                continue
            out.append((topic, int(ms), origin, bool(deleted), message, expires))
        return out

    def put(self, topic: str, ms: int, origin: str, deleted: bool, wire: Any,
            ttl: float | None) -> None:
        """Record the newest version of ``topic`` (``wire``: the message's wire form)."""
        blob = None
        if not deleted and wire is not None:
            fields = list(wire)
            fields[7] = None  # the ttl travels as the wall-clock ``expires`` column
            blob = msgpack.packb(fields, use_bin_type=True)
        expires = None if ttl is None else time.time() + ttl
        with self._lock:
            self._pending[topic] = (ms, origin, deleted, blob, expires)
        self._schedule()

    def wipe(self) -> None:
        with self._lock:
            self._pending.clear()
            self._wipe = True
        self._schedule()

    def purge_tombstones(self, before_ms: int) -> None:
        with self._lock:
            self._purge_before = before_ms
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        self._timer = loop.call_later(FLUSH_INTERVAL, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._executor.submit(self._write)

    def _write(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            wipe, self._wipe = self._wipe, False
            purge, self._purge_before = self._purge_before, None
        if not batch and not wipe and purge is None:
            return
        try:
            db = self._db
            db.execute("BEGIN")
            if wipe:
                db.execute("DELETE FROM retained")
            if purge is not None:
                db.execute("DELETE FROM retained WHERE deleted = 1 AND ms < ?", (purge,))
            db.executemany(
                "INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?, ?)",
                [(t, ms, o, int(d), b, e) for t, (ms, o, d, b, e) in batch.items()])
            db.execute("COMMIT")
            self.writes += len(batch)
        except sqlite3.Error:
            log.exception("retained messages could not be persisted")
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def close(self) -> None:
        """Write what is pending and close (graceful stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._executor.shutdown(wait=True)
        self._write()
        self._db.close()
