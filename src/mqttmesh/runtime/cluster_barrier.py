"""Route barriers: "tell me when every running member holds my routes up to version v".

A replica acknowledges each delta batch or snapshot it applies with ``ROUTE_ACK (epoch,
version)``; ``RouteBarriers`` keeps, per peer, the highest version acknowledged in our current
epoch and fires each waiting callback once every peer it waits for has acknowledged its
version, has gone down, or ``BARRIER_TIMEOUT`` has passed. The broker can use it
(``ClusterService.routes_barrier``) to send a SUBACK only once the new route is known
cluster-wide, closing the window in which a publish on another node right after the SUBACK
would find no route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mqttmesh.logs import log_event

__all__ = ["RouteBarriers", "BARRIER_TIMEOUT"]

BARRIER_TIMEOUT = 1.0

log = logging.getLogger("mqttmesh.cluster")


class _Barrier:
    __slots__ = ("version", "waiting", "callback", "timer", "done")

    def __init__(self, version: int, waiting: set[str], callback: Callable[[], None]) -> None:
        self.version = version
        self.waiting = waiting
        self.callback = callback
        self.timer: asyncio.TimerHandle | None = None
        self.done = False


class RouteBarriers:
    def __init__(self) -> None:
        self._acked: dict[str, int] = {}
        self._barriers: list[_Barrier] = []
        self.timeouts = 0  # barriers released by BARRIER_TIMEOUT, not by acks

    def add(self, version: int, waiting: set[str], callback: Callable[[], None],
            loop: asyncio.AbstractEventLoop) -> bool:
        """Wait for ``waiting`` peers to ack ``version``; False if already true."""
        pending = {p for p in waiting if self._acked.get(p, 0) < version}
        if not pending:
            return False
        barrier = _Barrier(version, pending, callback)
        barrier.timer = loop.call_later(BARRIER_TIMEOUT, self._expire, barrier)
        self._barriers.append(barrier)
        return True

    def acked(self, peer: str, version: int) -> None:
        if version > self._acked.get(peer, 0):
            self._acked[peer] = version
        self._settle(lambda b: self._acked.get(peer, 0) >= b.version, peer)

    def gone(self, peer: str) -> None:
        """``peer`` went down or left: nobody waits for it any more."""
        self._acked.pop(peer, None)
        self._settle(lambda b: True, peer)

    def _settle(self, satisfied: Callable[[_Barrier], bool], peer: str) -> None:
        if not self._barriers:
            return
        for barrier in list(self._barriers):
            if peer in barrier.waiting and satisfied(barrier):
                barrier.waiting.discard(peer)
                if not barrier.waiting:
                    self._fire(barrier)

    def _expire(self, barrier: _Barrier) -> None:
        self.timeouts += 1
        log_event(log, "warning", "route barrier timed out: SUBACK sent before these nodes "
                  "acknowledged the route", waiting=",".join(sorted(barrier.waiting)),
                  timeouts=self.timeouts)
        self._fire(barrier)

    def _fire(self, barrier: _Barrier) -> None:
        if barrier.done:
            return
        barrier.done = True
        if barrier.timer is not None:
            barrier.timer.cancel()
        self._barriers.remove(barrier)
        try:
            barrier.callback()
        except Exception:
            log.exception("route barrier callback failed")

    @property
    def waiting(self) -> int:
        return len(self._barriers)
