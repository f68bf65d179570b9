"""The core side of core/replicant clusters: attached replicants, their stream, their purge.

Theory of operation
-------------------
A replicant opens its uplink (distribution + RPC links, role ``replicant`` in the
handshake) to one core and asks ``replicant.attach``. The core admits it into the view with
a new incarnation (``Membership.admit``), tells the cores and its replicants (``VIEW``, then
``TOPOLOGY``), answers with the view, and *bootstraps* it: a ``ROUTE_SNAPSHOT`` of every
origin it holds, the retained set, shared groups and session claims. From then on the core
*streams* to its replicants every route change it applies, whoever the origin (its own
deltas, those of other cores and of their replicants), and every gossip round the digest of
every origin: a replicant that sees a gap or a different digest asks for that origin's
snapshot again (re-bootstrap of that origin; it never applies a delta past a gap).

A replicant's own route changes reach its core as ordinary ``ROUTE_DELTAS`` (origin = the
replicant); the core applies them and passes them on to the other cores, which pass them to
their replicants. Every node still keeps one single-writer stream per origin
(``cluster.routes``), only the path changes, so the invariants of ``docs/cluster.md`` hold;
a node accepts an origin's route data only from its *upstream* (``upstream_ok``).

Liveness: a replicant is running while its core is running and reports it attached
(``TOPOLOGY``). One that stays down for ``cluster.replicant_route_grace`` (EMQX: 15 min) is
purged by every core: a tombstone in the view and its routes dropped. A dead core is only
removed by autoclean or force-leave.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import v1, v2
from mqttmesh.errors import ClusterError
from mqttmesh.logs import log_event

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService
    from mqttmesh.runtime.peer_link import PeerLink

__all__ = ["CoreReplicants", "ATTACH", "FAILOVER_GRACE"]

log = logging.getLogger("mqttmesh.cluster.replicants")

ATTACH = "replicant.attach"
FAILOVER_GRACE = 15.0  # s: routes of a replicant whose core died stay in use this long


class CoreReplicants:
    """Replicants attached to this core (empty on a replicant)."""

    def __init__(self, service: ClusterService) -> None:
        self.s = service
        self.links: dict[str, PeerLink] = {}       # replicant -> its distribution uplink
        self.rpc_links: dict[str, PeerLink] = {}   # replicant -> its RPC uplink
        self.admitted: dict[str, int] = {}         # replicant -> incarnation we admitted it at
        self.grace: float = float(getattr(service.settings.cluster,
                                          "replicant_route_grace", 900.0))

    # -- attach / detach -------------------------------------------------------------------
    def attached(self) -> dict[str, int]:
        """Our replicants with the incarnation *we* admitted each at: after a failover to
        another core (a higher incarnation) our report no longer matches, even while the
        old link has not timed out yet (``Topology`` invariant: one core matches)."""
        m = self.s.membership
        return {r: inc for r, inc in self.admitted.items()
                if r in self.links and m.is_member(r)}

    def drop_stale(self) -> None:
        """Close uplinks of replicants that attached elsewhere since (the view holds a
        higher incarnation than the one we admitted them at)."""
        m = self.s.membership
        for name, inc in list(self.admitted.items()):
            if name in self.links and m.incarnation(name) > inc:
                self.drop(name, "replicant attached to another core")

    def on_attach(self, link: PeerLink, rid: int, args: Any) -> None:
        s = self.s
        name = link.peer.name
        try:
            if s.uplink is not None:
                raise ClusterError(f"{s.name} is a replicant: replicants attach to cores")
            if link.peer.role != "replicant" or link.outgoing:
                raise ClusterError("only a replicant attaches, on its own link")
        except ClusterError as exc:
            link.send([v1.REPLY, rid, False, str(exc)])
            return
        claimed = args.get("incarnation") if isinstance(args, dict) else 0
        old = self.links.get(name)
        if old is not None and old is not link:
            old.close("replicant attached again")
        member = s.membership.admit(name, "replicant", claimed if isinstance(claimed, int)
                                    else 0)
        self.links[name] = link
        self.admitted[name] = member.incarnation
        s.topology.report(s.name, self.attached())
        s.save_view()
        s.broadcast_view()
        self.refresh_liveness()
        self.broadcast_topology()
        link.send([v1.REPLY, rid, True, {"view": s.health.wire_view(), "core": s.name}])
        self._bootstrap(link)
        log_event(log, "info", "replicant attached", node=s.name, replicant=name,
                  incarnation=member.incarnation, replicants=len(self.links))

    def _bootstrap(self, link: PeerLink) -> None:
        s = self.s
        name = link.peer.name
        for core, attached in s.topology_reports():
            if core != s.name:
                link.send([v2.TOPOLOGY, core, attached, []])
        link.send(self.topology_msg())
        for origin in s.routes.nodes():
            if origin == name:
                continue
            snap = s.routes.replica_snapshot(origin)
            if snap is not None:
                link.send([v1.ROUTE_SNAPSHOT, origin, *snap])
        link.send([v1.ROUTE_RESYNC, name])  # and its own routes, in full, to us
        link.send(s.retained.full_set())
        s.shared.on_link_up(link)
        s.sessions.on_link_up(link)

    def link_closed(self, link: PeerLink) -> None:
        """The distribution uplink of a replicant closed."""
        s = self.s
        name = link.peer.name
        if self.links.get(name) is not link:
            return
        del self.links[name]
        self.admitted.pop(name, None)
        rpc = self.rpc_links.pop(name, None)
        if rpc is not None:
            rpc.close("replicant detached")
        s.topology.report(s.name, self.attached())
        self.refresh_liveness()
        self.broadcast_topology()
        if s.running:
            log_event(log, "warning", "replicant detached", node=s.name, replicant=name,
                      reason=link.close_reason or "link closed")

    def drop(self, name: str, reason: str) -> None:
        """``name`` left the cluster: close its uplink if it is ours."""
        link = self.links.get(name)
        if link is not None:
            link.close(reason)
            self.link_closed(link)

    def drop_all(self, reason: str) -> None:
        for link in list(self.links.values()):
            link.close(reason)
            self.link_closed(link)

    # -- liveness ----------------------------------------------------------------------------
    def refresh_liveness(self) -> None:
        """Mark every replicant up or down from the topology and the cores' liveness."""
        s = self.s
        if s.uplink is not None:
            return  # a replicant takes liveness from its core's report (``_on_topology``)
        self.drop_stale()
        m = s.membership
        now = s.loop.time() if s.loop is not None else 0.0
        for name in m.members_of_role("replicant"):
            if name == s.name:
                continue
            core = s.topology.core_of(name)
            up = core == s.name or (core is not None and m.is_up(core))
            if up:
                self.set_up(name, core or s.name)
            else:
                self.set_down(name, core is not None and core != s.name
                              and not m.is_up(core), now)

    def set_up(self, name: str, core: str) -> None:
        s = self.s
        s.routes.set_down(name, False)
        if s.membership.mark_up(name):
            log_event(log, "info", "node up", node=s.name, peer=name, role="replicant",
                      core=core)

    def set_down(self, name: str, orphaned: bool, now: float) -> None:
        """``name`` is out of reach. If only its core died (``orphaned``) it is probably
        failing over to another core: its routes stay in use for ``FAILOVER_GRACE`` so QoS
        1/2 messages for it wait in the outboxes instead of matching nothing (SPEC §5: the
        death of a node other than the publisher's and subscriber's loses nothing)."""
        s = self.s
        m = s.membership
        s.barriers.gone(name)
        if m.mark_down(name, now) and s.running:
            log_event(log, "warning", "node down", node=s.name, peer=name, role="replicant",
                      failing_over=orphaned)
        since = m.down_since(name)
        if not orphaned or since is None or now - since >= FAILOVER_GRACE:
            s.routes.set_down(name, True)

    def purge_due(self, now: float) -> None:
        """Replicants down for ``grace`` seconds: removed from the cluster, routes dropped."""
        s = self.s
        m = s.membership
        for name in m.autoclean_due(now, self.grace):
            if m.role_of(name) != "replicant":
                continue
            m.remove(name)
            s.forget(name)
            s.save_view()
            s.broadcast_view()
            log_event(log, "warning", "replicant purged after its grace period",
                      node=s.name, replicant=name, grace=f"{self.grace:g}s")

    # -- streams -----------------------------------------------------------------------------
    def topology_msg(self) -> list[Any]:
        s = self.s
        return [v2.TOPOLOGY, s.name, self.attached(),
                list(s.membership.status().running_nodes)]

    def broadcast_topology(self) -> None:
        s = self.s
        if s.uplink is not None or not s.running:
            return
        msg = self.topology_msg()
        for link in s.core_links():
            if link.peer.version >= v2.VERSION:  # a v1 core would close the link on it
                link.send(msg)
        for link in list(self.links.values()):
            link.send(msg)

    def to_replicants(self, msg: list[Any], skip: str = "") -> None:
        for name, link in list(self.links.items()):
            if name != skip:
                link.send(msg)

    def stream_route_data(self, msg: list[Any], origin: str, sender: str) -> None:
        """Route data of ``origin`` applied here (from ``sender``): pass it on downstream."""
        s = self.s
        if s.uplink is not None:
            return
        if origin == s.name or (origin == sender and origin in self.links):
            for link in s.core_links():
                link.send(msg)
        self.to_replicants(msg, skip=origin)

    def digests_msgs(self) -> list[list[Any]]:
        """Digests of every origin we hold (for our replicants' anti-entropy)."""
        out = []
        for origin, d in self.s.routes.digests().items():
            out.append([v1.ROUTE_DIGEST, origin, d.epoch, d.version, d.hash])
        return out

    def gossip(self, view: list[Any]) -> None:
        """Every gossip round: view, topology and all digests to our replicants; our
        replicants' digests to the other cores."""
        s = self.s
        self.refresh_liveness()  # failover graces run out between events
        if not self.links:
            self.broadcast_topology()
            return
        digests = self.digests_msgs()
        for link in list(self.links.values()):
            link.send(view)
            for msg in digests:
                link.send(msg)
        self.broadcast_topology()
        own = [msg for msg in digests if msg[1] in self.links]
        for link in s.core_links():
            for msg in own:
                link.send(msg)
