"""The replicant side: pick a core, attach to it, follow its stream, fail over.

Theory of operation
-------------------
A replicant never joins and is never joined: it finds cores by discovery (any strategy but
``manual``; ``on_candidates``) plus the cores of its last view, asks each candidate
``join_check`` on a fresh authenticated link (role ``replicant`` in the handshake), keeps
the cores (a replicant answers with its role and is skipped), and attaches to the one
serving the fewest replicants among the cores of its view (``cluster.pick_core``: not a core
that left the cluster; ties at random). The attach link stays as the *distribution uplink*; an RPC uplink to the same core
follows. The core answers with the view and bootstraps it (``cluster_replicants``).

While attached, everything from the core is trusted as the upstream of every origin: route
deltas and snapshots of any node, digests, views, topology (``running_nodes`` is the core's).
Everything to other nodes goes through the core (``cluster_relay``). When the uplink closes
(core killed, partition, heartbeat timeout) every other node is marked down at once (their
routes stop being matched: we cannot reach them) and the loop attaches again, to another
core if one answers; the route replicas are kept, so a failover costs only the digests
that differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import KIND_NODE, ClientHandshake, Membership, pick_core, v2
from mqttmesh.errors import ClusterError, HandshakeError
from mqttmesh.logs import log_event
from mqttmesh.runtime.cluster_replicants import ATTACH
from mqttmesh.runtime.peer_link import LinkUnreachable

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService
    from mqttmesh.runtime.peer_link import PeerLink

__all__ = ["ReplicantUplink"]

log = logging.getLogger("mqttmesh.cluster.replicant")

PROBE_TIMEOUT = 3.0
RETRY_MAX = 2.0


class ReplicantUplink:
    """This replicant's uplink to one core."""

    def __init__(self, service: ClusterService) -> None:
        self.s = service
        self.core: str | None = None
        self.link: PeerLink | None = None
        self.candidates: set[str] = set()
        self._wake = asyncio.Event()
        self._rpc_task: asyncio.Task[None] | None = None
        self._refused: dict[str, str] = {}
        self.attaches = 0

    def link_for(self, rpc: bool) -> PeerLink | None:
        if self.core is None or self.link is None or self.link.closed:
            return None
        if not rpc:
            return self.link
        link = self.s.forwarder.links.get(self.core)
        return link if link is not None and not link.closed else None

    def on_candidates(self, names: list[str]) -> None:
        new = set(names) - {self.s.name} - self.candidates
        if new:
            self.candidates |= new
            self._wake.set()

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        s = self.s
        delay = 0.2
        while s.running:
            if s.left_manually:
                await self._sleep(3600.0)
                continue
            names = (self.candidates | set(s.membership.members_of_role("core"))) - {s.name}
            probes = await self._probe_all(sorted(names))
            loads = {name: info for name, (link, info) in probes.items()}
            # a core that dropped us but answers the probe is fine again (it may have
            # joined another cluster); a dead one does not answer
            known = [n for n in s.membership.members_of_role("core") if n != s.name]
            chosen = pick_core({n: i.get("replicants", 0) for n, i in loads.items()},
                               prefer=known)
            for name, (link, _) in probes.items():
                if name != chosen:
                    link.close("not chosen")
            if chosen is None:
                await self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = 0.2
            link = probes[chosen][0]
            await self._attached(chosen, link)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _probe_all(self, names: list[str]) -> dict[str, tuple[PeerLink, dict[str, Any]]]:
        results = await asyncio.gather(*(self._probe(n) for n in names))
        return {n: r for n, r in zip(names, results) if r is not None}

    async def _probe(self, name: str) -> tuple[PeerLink, dict[str, Any]] | None:
        s = self.s
        hs = ClientHandshake(s.cookie, KIND_NODE, s.name, s.cluster_name, "replicant")
        try:
            link = await asyncio.wait_for(
                s.transport.open_link(name, "dist", hs, s.host), PROBE_TIMEOUT)
        except (LinkUnreachable, asyncio.TimeoutError, OSError, RuntimeError):
            return None
        except HandshakeError as exc:
            reason = str(exc).removeprefix("refused by peer: ")
            if self._refused.get(name) != reason:
                self._refused[name] = reason
                log_event(log, "warning", f"link refused: {reason}", node=s.name, peer=name,
                          address=s.transport.address(name))
            return None
        self._refused.pop(name, None)
        if link.peer.name != name or link.peer.version < v2.VERSION:
            link.close("wrong node or no wire v2")
            return None
        reader = asyncio.get_running_loop().create_task(self._read(link))
        link_reader = reader
        try:
            info = await link.request("join_check", {}, timeout=PROBE_TIMEOUT)
        except ClusterError:
            link.close("probe failed")
            return None
        if not isinstance(info, dict) or info.get("role", "core") != "core":
            link.close("not a core")
            return None
        setattr(link, "_reader_task", link_reader)
        return link, info

    async def _read(self, link: PeerLink) -> None:
        """The uplink's reader: once attached, messages go to the service's handler."""
        await link.run(self._dispatch)

    def _dispatch(self, link: PeerLink, msg: list[Any]) -> Any:
        if link is not self.link:
            return None  # a probe link: only REPLYs matter (handled by the link)
        return self.s.on_uplink_message(link, msg)

    async def _attached(self, core: str, link: PeerLink) -> None:
        s = self.s
        self.core, self.link = core, link
        try:
            result = await link.request(
                ATTACH, {"incarnation": s.membership.incarnation(s.name)}, timeout=10.0)
            entries = Membership.from_wire(result["view"])
        except (ClusterError, KeyError, TypeError) as exc:
            log_event(log, "warning", "attach refused", node=s.name, core=core,
                      reason=str(exc))
            link.close("attach failed")
            self.core, self.link = None, None
            await self._sleep(RETRY_MAX)
            return
        s.membership.merge(entries)
        s.membership.mark_up(core)
        s.routes.set_down(core, False)
        s.save_view()
        self.attaches += 1
        log_event(log, "info", "attached to core", node=s.name, core=core,
                  members=len(s.membership.members()), attaches=self.attaches)
        if s._tg is not None:
            self._rpc_task = s._tg.create_task(s.forwarder.connector(core),
                                                name=f"cluster-rpc-{core}")
        s.track(link)
        s.on_uplink_up(link)
        reader: asyncio.Task[None] = getattr(link, "_reader_task")
        try:
            await asyncio.shield(reader)
        except asyncio.CancelledError:
            link.close("node stopping")
            raise
        except Exception:  # the reader failing is a closed link
            pass
        finally:
            s.untrack(link)
            self.core, self.link = None, None
            if self._rpc_task is not None:
                self._rpc_task.cancel()
                self._rpc_task = None
            s.forwarder.drop_link(core)
            s.on_uplink_down(core, link.close_reason or "link closed")
