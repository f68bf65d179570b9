"""Topology: which core each replicant follows, from the cores' TOPOLOGY reports.

Theory of operation
-------------------
Cores form a full mesh; a replicant keeps one uplink to one core and no other link. A core
that accepts a replicant's attach writes a new view entry for it (``Membership.admit``, a
higher incarnation) and reports ``{replicant: incarnation}`` for every replicant attached
to it in a ``TOPOLOGY`` message, to the other cores and to its own replicants. Here we keep
each core's latest report. ``core_of(r)`` is the core whose report lists ``r`` with the
incarnation of ``r``'s current view entry: when a replicant fails over, the new core's
report carries the newer incarnation, so a late report from the old core (or a core that
has not yet noticed the link died) cannot win. At most one core matches, because every
attach writes a distinct incarnation.

The topology drives relaying (``next hop`` to a replicant is its core), which core may
stream a replicant's routes (the *upstream* of its route stream), and a replicant's
liveness as seen from everywhere else (up while its core is up and reports it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping

__all__ = ["Topology", "pick_core"]


class Topology:
    """The latest TOPOLOGY report of every core.

    Args:
        incarnation_of: the current view incarnation of a node (``Membership.incarnation``).
    """

    def __init__(self, incarnation_of: Callable[[str], int]) -> None:
        self._incarnation_of = incarnation_of
        self._reports: dict[str, dict[str, int]] = {}

    def report(self, core: str, attached: Mapping[str, int]) -> bool:
        """Take ``core``'s report; True if it changed anything."""
        new = {r: inc for r, inc in attached.items()
               if isinstance(r, str) and isinstance(inc, int)}
        if self._reports.get(core) == new:
            return False
        self._reports[core] = new
        return True

    def forget(self, core: str) -> None:
        """``core`` left the cluster (or we left it)."""
        self._reports.pop(core, None)

    def clear(self) -> None:
        self._reports.clear()

    def core_of(self, replicant: str) -> str | None:
        """The core ``replicant`` is attached to now, as far as the reports tell."""
        inc = self._incarnation_of(replicant)
        for core, attached in self._reports.items():
            if attached.get(replicant) == inc:
                return core
        return None

    def replicants_of(self, core: str) -> list[str]:
        """Replicants ``core`` reports and that are still attached to it (by incarnation)."""
        return sorted(r for r, inc in self._reports.get(core, {}).items()
                      if inc == self._incarnation_of(r))

    def attachments(self) -> dict[str, str]:
        """Every replicant known to be attached -> its core."""
        out: dict[str, str] = {}
        for core in sorted(self._reports):
            for r in self.replicants_of(core):
                out[r] = core
        return out


def pick_core(loads: Mapping[str, int], prefer: Iterable[str] = (),
              rng: random.Random | None = None) -> str | None:
    """The core to attach to: one of ``prefer`` if any answers (the cores of our cluster as
    our view knows it: not a core that left, nor a lone core of the same cookie), then the
    fewest replicants, ties broken at random (replicants that start together see the same
    loads: a fixed tie-break would put them all on one core).

    Args:
        loads: reachable cores -> how many replicants each serves now.
        prefer: cores to choose among first.
        rng: the random source (a seeded one in tests).
    """
    if not loads:
        return None
    preferred = set(prefer)
    best = min((c not in preferred, n) for c, n in loads.items())
    ties = sorted(c for c, n in loads.items() if (c not in preferred, n) == best)
    return (rng or random).choice(ties)
