"""ClusterHealth: autoclean and autoheal of one node (the I/O around ``cluster.healing``).

* ``autoclean(now)`` (called by the service's ticker): a member down for ``cluster.autoclean``
  seconds is removed as if force-left (its links stop, its routes are purged here), logged,
  and recorded as an *autoclean* tombstone: not gossiped, each node cleans on its own timer.
* With ``cluster.autoheal`` on, every node we cleaned is probed every ``PROBE_INTERVAL`` s (an
  authenticated link attempt, as a normal link): once it answers it is re-admitted
  (``Healer.readmission``), the normal connector links to it, the views merge and the route
  replicas re-sync by digest. The other side does the same for us, or re-admits us when our
  view arrives (``on_view``).
* ``data_dir/healing.json`` keeps the autoclean records across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import KIND_NODE, ClientHandshake, Member
from mqttmesh.cluster.healing import Healer
from mqttmesh.errors import ClusterError
from mqttmesh.logs import log_event
from mqttmesh.runtime.cluster_store import write_atomic

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService

__all__ = ["ClusterHealth", "PROBE_INTERVAL"]

log = logging.getLogger("mqttmesh.cluster")

PROBE_INTERVAL = 2.0
HEALING_FILE = "healing.json"


class ClusterHealth:
    """Autoclean + autoheal for ``service`` (a ``ClusterService``)."""

    def __init__(self, service: ClusterService) -> None:
        self.s = service
        self.healer = Healer(bool(getattr(service.settings.cluster, "autoheal", True)))
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._load()

    # -- gossip ----------------------------------------------------------------------------
    def wire_view(self) -> dict[str, list[Any]]:
        """The view we gossip (autoclean tombstones left out)."""
        return self.healer.gossip_view(self.s.membership)

    def on_view(self, sender: str, entries: list[Member], member: bool
                ) -> tuple[list[Member], bool]:
        """A view from ``sender``: returns (entries to merge, whether sender is a member now).

        A sender we removed by autoclean is alive (it talks to us): re-admitted first, with
        autoheal on. Members it lists that we cleaned come back too."""
        membership = self.s.membership
        if not member:
            undo = self.healer.readmit_sender(membership, sender)
            if undo is None:
                return entries, False
            log_event(log, "warning", "autoheal: node reachable again, merged back",
                      node=self.s.name, peer=sender)
            self.s.apply_view([undo])
            member = membership.is_member(sender)
        plan = self.healer.plan_merge(membership, entries)
        for name in plan.readmitted:
            log_event(log, "warning", "autoheal: node alive for a member, merged back",
                      node=self.s.name, peer=name, told_by=sender)
        return plan.entries, member

    # -- autoclean -------------------------------------------------------------------------
    def autoclean(self, now: float) -> None:
        after = self.s.autoclean
        if after is None:
            return
        membership = self.s.membership
        for name in membership.autoclean_due(now, after):
            tomb = membership.remove(name)
            self.healer.record_clean(tomb)
            self.s.forget(name)
            self.s.save_view()
            self._save()
            log_event(log, "warning", "node removed by autoclean", node=self.s.name,
                      peer=name, after=f"{after:g}s", autoheal=self.healer.autoheal)

    # -- autoheal probes -------------------------------------------------------------------
    def tick(self) -> None:
        """Start a probe per cleaned node, stop those no longer needed."""
        self.healer.forget_stale(self.s.membership)
        wanted = set(self.healer.cleaned_nodes(self.s.membership)) \
            if self.healer.autoheal and self.s.running else set()
        for name in list(self._probes):
            if name not in wanted or self._probes[name].done():
                self._probes.pop(name).cancel()
        tg = self.s._tg
        if tg is None:
            return
        for name in wanted - set(self._probes):
            self._probes[name] = tg.create_task(self._probe(name), name=f"autoheal-{name}")

    def stop(self) -> None:
        for task in self._probes.values():
            task.cancel()
        self._probes.clear()

    async def _probe(self, name: str) -> None:
        s = self.s
        while s.running and self.healer.is_cleaned(s.membership, name):
            hs = ClientHandshake(s.cookie, KIND_NODE, s.name, s.cluster_name, s.role)
            try:
                link = await s.transport.open_link(name, "dist", hs, s.host)
            except (ClusterError, OSError):
                await asyncio.sleep(PROBE_INTERVAL)
                continue
            with contextlib.suppress(Exception):
                link.close("autoheal probe")
            if link.peer.name != name:
                await asyncio.sleep(PROBE_INTERVAL)
                continue
            undo = self.healer.readmission(s.membership, name)
            if undo is not None:
                log_event(log, "warning", "autoheal: node reachable again, merged back",
                          node=s.name, peer=name)
                s.apply_view([undo])
                self._save()
            return

    # -- persistence -----------------------------------------------------------------------
    def _path(self) -> str:
        return os.path.join(self.s.data_dir, HEALING_FILE)

    def _load(self) -> None:
        try:
            with open(self._path(), encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict):
                self.healer.load(data.get("cleaned", {}))
        except (OSError, ValueError):
            pass

    def _save(self) -> None:
        with contextlib.suppress(OSError):
            write_atomic(self._path(), json.dumps({"cleaned": self.healer.to_json_obj()}))
