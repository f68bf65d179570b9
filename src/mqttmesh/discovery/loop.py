"""`DiscoveryLoop`: register, discover, hand candidates to the cluster service, repeat.

Theory of operation. One round: `strategy.register()` (refresh: etcd keep-alive, mcast
announcement), `strategy.discover()`, drop this node and duplicates, then — if anything is
left — take the strategy's join lock and await `on_candidates(names)`, which the cluster
service implements with the same join path as `ctl cluster join` (and which decides whether
to join at all: discovery never makes a node leave a healthy cluster). The next round
starts `interval` seconds later. A round that fails with `DiscoveryError` is logged in
words ("etcd unreachable (...), retrying in 5s") and retried after a backoff that doubles
from `interval` up to `max_backoff`; the first success after failures is logged too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mqttmesh.discovery.base import DiscoveryStrategy
from mqttmesh.errors import DiscoveryError

__all__ = ["DiscoveryLoop", "DiscoveryStats", "OnCandidates"]

log = logging.getLogger("mqttmesh.discovery")

OnCandidates = Callable[[list[str]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DiscoveryStats:
    strategy: str
    rounds: int
    failures: int                  # rounds that raised DiscoveryError
    consecutive_failures: int
    candidates: tuple[str, ...]    # the last successful round's answer (self excluded)
    last_error: str | None


class DiscoveryLoop:
    """Runs a `DiscoveryStrategy` periodically for the cluster service.

    Args:
        strategy: from `make_strategy`.
        on_candidates: awaited after each successful round that found other nodes, with
            their names sorted; holds the strategy's join lock meanwhile. Exceptions it
            raises are logged and the loop goes on.
        interval: seconds between rounds.
        node_name: this node (`name@host`), never passed to `on_candidates`; defaults to
            the strategy's `node_name`.
        max_backoff: the longest wait after repeated failures.
    """

    def __init__(
        self,
        strategy: DiscoveryStrategy,
        on_candidates: OnCandidates,
        interval: float = 5.0,
        *,
        node_name: str | None = None,
        max_backoff: float = 60.0,
    ) -> None:
        self._strategy = strategy
        self._node_name = node_name if node_name is not None else getattr(strategy, "node_name", "")
        self._on_candidates = on_candidates
        self._interval = interval
        self._max_backoff = max(max_backoff, interval)
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._round_done = asyncio.Condition()
        self._running = False
        self._leaving = False
        self._rounds = 0
        self._failures = 0
        self._consecutive = 0
        self._candidates: tuple[str, ...] = ()
        self._last_error: str | None = None

    async def run(self) -> None:
        """Discover until `stop()`/`leave()` (or cancellation); closes the strategy on exit."""
        self._running = True
        name = self._strategy.name
        log.info("node discovery started (strategy %s, every %gs)", name, self._interval)
        try:
            while not self._stop.is_set():
                delay = await self._round()
                async with self._round_done:
                    self._round_done.notify_all()
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            try:
                if self._leaving:
                    await self._unregister()
                await self._strategy.close()
            finally:
                self._done.set()
                log.info("node discovery stopped (strategy %s)", name)

    def stop(self) -> None:
        """Ask `run()` to return after the current round."""
        self._stop.set()

    async def leave(self) -> None:
        """Stop discovering and remove this node's registration (on `ctl cluster leave`)."""
        self._leaving = True
        self.stop()
        if self._running:
            await self._done.wait()
        else:
            await self._unregister()
            await self._strategy.close()

    async def wait_round(self) -> DiscoveryStats:
        """Wait for the next round to finish; its statistics."""
        async with self._round_done:
            await self._round_done.wait()
        return self.statistics()

    def statistics(self) -> DiscoveryStats:
        return DiscoveryStats(self._strategy.name, self._rounds, self._failures, self._consecutive,
                              self._candidates, self._last_error)

    async def _round(self) -> float:
        self._rounds += 1
        try:
            if not self._leaving:
                await self._strategy.register()
            found = await self._strategy.discover()
        except DiscoveryError as exc:
            self._failures += 1
            self._consecutive += 1
            self._last_error = str(exc)
            delay = min(self._interval * 2.0 ** (self._consecutive - 1), self._max_backoff)
            log.warning("%s, retrying in %gs", exc, delay)
            return delay
        if self._consecutive:
            log.info("%s discovery works again after %d failed attempts", self._strategy.name, self._consecutive)
        self._consecutive = 0
        self._last_error = None
        candidates = tuple(sorted({node for node in found if node and node != self._node_name}))
        if candidates != self._candidates:
            if candidates:
                log.info("discovered nodes: %s", ", ".join(candidates))
            else:
                log.info("discovered no other nodes")
            self._candidates = candidates
        if candidates:
            await self._offer(list(candidates))
        return self._interval

    async def _offer(self, candidates: list[str]) -> None:
        try:
            locked = await self._strategy.lock()
        except DiscoveryError as exc:
            log.warning("could not take the join lock (%s); trying again next round", exc)
            return
        if not locked:
            return
        try:
            await self._on_candidates(candidates)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling discovered nodes %s failed", ", ".join(candidates))
        finally:
            try:
                await self._strategy.unlock()
            except DiscoveryError as exc:
                log.warning("could not release the join lock (%s); it expires with the lease", exc)

    async def _unregister(self) -> None:
        try:
            await self._strategy.unregister()
        except DiscoveryError as exc:
            log.warning("could not unregister from %s discovery: %s", self._strategy.name, exc)
