"""Messages between nodes for a ClusterService: route sync, views, topology, the uplink.

Theory of operation
-------------------
Part of ``ClusterService`` (a mixin: the methods take the service as ``self``). Each node
ships its own route changes on its stream links and answers digests / resync requests with
snapshots; a node accepts an origin's route data only from the origin's upstream
(``upstream_ok``: itself, a replicant's core; see ``docs/scaling.md``) and passes what it
applied on to its replicants. Views are merged on receipt (``cluster.membership``); a node
that is not a member gets ``BYE`` with the tombstones it needs (a removed node goes
standalone, a node that missed our leave forgets us). ``TOPOLOGY`` reports tell which core
each replicant follows and, on a replicant, which nodes run.
"""

from __future__ import annotations

import logging
from typing import Any

from mqttmesh.cluster import ApplyResult, Digest, Member, Membership, MemberStatus, v1, v2
from mqttmesh.cluster.wire import session_ops, shared_ops
from mqttmesh.errors import ClusterError
from mqttmesh.logs import log_event
from mqttmesh.runtime.cluster_base import ClusterState
from mqttmesh.runtime.cluster_replicants import ATTACH
from mqttmesh.runtime.peer_link import PeerLink



__all__ = ["ClusterMessages"]

log = logging.getLogger("mqttmesh.cluster")


class ClusterMessages(ClusterState):
    """What nodes tell each other (mixed into ``ClusterService``)."""

    # -- replicant side (runtime/replicant_uplink.py) --------------------------------------
    def on_uplink_up(self, link: PeerLink) -> None:
        """Attached: send what a new link gets (our digest, retained, shared, claims)."""
        link.send(self._own_digest_msg())
        link.send(self.retained.full_set())
        self.shared.on_link_up(link)
        self.sessions.on_link_up(link)

    def on_uplink_down(self, core: str, reason: str) -> None:
        """The uplink closed: every other node is out of reach until we attach again.

        Their routes stay in use meanwhile: QoS 1/2 messages published here during the
        failover wait in the outboxes and go out through the next core (QoS 0 is dropped:
        there is no link); the next core's TOPOLOGY tells which nodes really are down."""
        if self.loop is None:
            return
        now = self.loop.time()
        for name in self.membership.peers():
            self.barriers.gone(name)
            self.membership.mark_down(name, now)
        if self.running:
            log_event(log, "warning", "core link lost: failing over", node=self.name,
                      core=core, reason=reason)

    def on_uplink_message(self, link: PeerLink, msg: list[Any]) -> Any:
        if msg[0] == v1.VIEW:
            try:
                entries = Membership.from_wire(msg[1])
            except ClusterError:
                return None
            self.apply_view(entries)
            return None
        return self._on_dist_message(link, msg)

    def topology_reports(self) -> list[tuple[str, dict[str, int]]]:
        return [(core, {r: self.membership.incarnation(r)
                        for r in self.topology.replicants_of(core)})
                for core in self.membership.members_of_role("core")]

    def _on_topology(self, link: PeerLink, msg: list[Any]) -> None:
        _, core, attached, running = msg
        sender = link.peer.name
        if self.uplink is not None:
            if sender != self.uplink.core:
                return
            self.topology.report(core, attached)
            if core == sender and self.loop is not None:
                now = self.loop.time()
                up = {n for n in running if isinstance(n, str)}
                for name in self.membership.peers():
                    if name in up:
                        self.routes.set_down(name, False)
                        self.membership.mark_up(name)
                        continue
                    their_core = self.topology.core_of(name) \
                        if self.membership.role_of(name) == "replicant" else None
                    self.replicants.set_down(
                        name, their_core is not None and their_core not in up, now)
            return
        if core != sender or self.membership.role_of(sender) != "core":
            return
        if self.topology.report(core, attached):
            self.replicants.to_replicants([v2.TOPOLOGY, core, attached, []])
            self.replicants.refresh_liveness()

    def upstream_ok(self, origin: str, sender: str) -> bool:
        """Whether route data of ``origin`` may come from ``sender`` (its upstream)."""
        if origin == sender:
            return True
        if self.uplink is not None:
            return sender == self.uplink.core
        return (self.membership.role_of(origin) == "replicant"
                and self.topology.core_of(origin) == sender)


    # -- messages between nodes ------------------------------------------------------------
    def _own_digest_msg(self) -> list[Any]:
        d = self.routes.own_digest()
        return [v1.ROUTE_DIGEST, self.name, d.epoch, d.version, d.hash]

    async def _on_dist_message(self, link: Any, msg: list[Any]) -> None:
        kind = msg[0]
        sender = link.peer.name
        member = self.membership.is_member(sender) and sender != self.name
        if kind == v2.RELAY:
            unwrapped = self.relay.on_relay(link, msg, self._on_dist_message, rpc=False)
            if unwrapped is not None:
                await unwrapped
            return
        if kind == v2.TOPOLOGY:
            self._on_topology(link, msg)
        elif kind == v1.REQUEST and msg[2] == ATTACH:
            self.replicants.on_attach(link, msg[1], msg[3])
        elif kind == v1.VIEW:
            self._on_view(link, msg[1], member)
        elif kind == v1.BYE:
            self._on_bye(sender, msg[2])
        elif kind == v1.REQUEST and msg[2].startswith(session_ops.PREFIX):
            self.sessions.on_request(link, msg[1], msg[2], msg[3])
        elif kind == v1.REQUEST and msg[2].startswith(shared_ops.PREFIX):
            self.shared.on_request(link, msg[1], msg[2], msg[3])
        elif kind == v1.REQUEST:
            await self.ops.handle_request(link, msg[1], msg[2], msg[3])
        elif not member:
            return
        elif kind == v1.ROUTE_DELTAS:
            _, origin, epoch, first, ops = msg
            if not self.upstream_ok(origin, sender) or not all(
                    isinstance(o, list) and len(o) == 2 and o[0] in (0, 1)
                    and isinstance(o[1], str) for o in ops):
                return
            result = self.routes.apply_deltas(origin, epoch, first, ops)
            if result is ApplyResult.GAP:
                link.send([v1.ROUTE_RESYNC, origin])
            else:
                self._ack_routes(link, origin)
                if result is ApplyResult.APPLIED:
                    self.replicants.stream_route_data(msg, origin, sender)
        elif kind == v1.ROUTE_DIGEST:
            _, origin, epoch, version, hash_ = msg
            if self.upstream_ok(origin, sender) and self.routes.needs_resync(
                    origin, Digest(epoch, version, hash_, 0)):
                link.send([v1.ROUTE_RESYNC, origin])
        elif kind == v1.ROUTE_RESYNC:
            origin = msg[1]
            if origin == self.name or self.uplink is None:  # a core serves any copy
                snap = self.routes.replica_snapshot(origin)
                if snap is not None:
                    link.send([v1.ROUTE_SNAPSHOT, origin, *snap])
        elif kind == v1.ROUTE_SNAPSHOT:
            _, origin, epoch, version, filters = msg
            if self.upstream_ok(origin, sender) and all(isinstance(f, str) for f in filters):
                if self.routes.apply_snapshot(origin, epoch, version, filters):
                    self.replicants.stream_route_data(msg, origin, sender)
                self._ack_routes(link, origin)
        elif kind == v1.RETAINED:
            self.retained.on_message(link, msg[1])
        elif kind == v1.ROUTE_ACK:
            _, epoch, version = msg
            if epoch == self.epoch:
                self.barriers.acked(sender, version)

    async def _on_ctl_message(self, link: PeerLink, msg: list[Any]) -> None:
        if msg[0] == v1.REQUEST:
            await self.ops.handle_request(link, msg[1], msg[2], msg[3])

    def _ack_routes(self, link: Any, origin: str) -> None:
        digest = self.routes.replica_digest(origin)
        if digest is None:
            return
        if origin != link.peer.name:  # relayed route data: the ack goes to the origin
            link = self.relay.link_to(origin)
            if link is None:
                return
        link.send([v1.ROUTE_ACK, digest.epoch, digest.version])

    def _on_view(self, link: PeerLink, data: dict[Any, Any], member: bool) -> None:
        sender = link.peer.name
        try:
            entries = Membership.from_wire(data)
        except ClusterError:
            return
        entries, member = self.health.on_view(sender, entries, member)
        if member:
            self.apply_view(entries)
            return
        # Not in our cluster: tell it the tombstones it needs (see module docstring).
        left: dict[str, int] = {}
        ours = self.membership.view.get(sender)
        if ours is not None and ours.status is MemberStatus.LEFT:
            left[sender] = ours.incarnation
        theirs = {e.name: e for e in entries}
        mine = theirs.get(self.name)
        if mine is not None and mine.status is MemberStatus.MEMBER \
                and mine.incarnation < self.membership.incarnation(self.name):
            left[self.name] = self.membership.incarnation(self.name)
        if left:
            link.send([v1.BYE, "not a member", {"left": left}])

    def _on_bye(self, sender: str, info: dict[Any, Any]) -> None:
        left = info.get("left")
        if not isinstance(left, dict):
            return
        for name, inc in left.items():
            if not isinstance(name, str) or not isinstance(inc, int):
                continue
            if inc <= self.membership.incarnation(name) or not self.membership.is_member(name):
                continue
            if name == self.name:
                log_event(log, "warning", "this node was removed from the cluster",
                          node=self.name, told_by=sender)
                self.become_standalone(inc)
                return
            self.apply_view([Member(name, inc, MemberStatus.LEFT)])

    def apply_view(self, entries: list[Member]) -> None:
        """Merge gossiped entries and act on what changed."""
        was = set(self.membership.members())
        changed = self.membership.merge(entries)
        if not changed:
            return
        for entry in changed:
            if entry.name == self.name:
                if entry.status is MemberStatus.LEFT:
                    log_event(log, "warning", "this node was removed from the cluster",
                              node=self.name)
                    self.become_standalone(entry.incarnation)
                    return
                continue
            if entry.status is MemberStatus.MEMBER:
                if entry.name not in was:
                    log_event(log, "info", "node joined", node=self.name, peer=entry.name)
                    if self.loop is not None:
                        self.membership.mark_down(entry.name, self.loop.time())
                    self.routes.set_down(entry.name, True)
                self.start_peer(entry.name)
            elif entry.name in was:
                self.forget(entry.name)
                log_event(log, "info", "node left", node=self.name, peer=entry.name)
        self.replicants.refresh_liveness()
        self.save_view()

    def remove_member(self, name: str) -> None:
        """Force-leave ``name`` here and tell every member."""
        self.membership.remove(name)
        self.forget(name)
        self.save_view()
        self.broadcast_view()
        log_event(log, "info", "node left", node=self.name, peer=name, forced=True)

    def forget(self, name: str) -> None:
        self.replicants.drop(name, "node left")
        self.topology.forget(name)
        self.relay.forget(name)
        self._stop_peer(name, "node left")
        self.forwarder.drop_peer(name)  # (replicants have no _Peer: not done by _stop_peer)
        self.routes.purge(name)
        self.barriers.gone(name)
        self.sessions.node_gone(name)
        self.shared.node_gone(name)

    def broadcast_view(self) -> None:
        if self.uplink is not None:
            return  # a replicant's view is its core's
        view = [v1.VIEW, self.health.wire_view()]
        for link in self.stream_links():
            link.send(view)

    def become_standalone(self, min_incarnation: int = 0) -> None:
        if self.replicants.links:  # they must not come back to us: we left their cluster
            inc = max(min_incarnation, self.membership.incarnation(self.name))
            self.replicants.to_replicants([v1.VIEW, {self.name: [inc, "left", self.role]}])
        self.replicants.drop_all("our core left the cluster")
        self.topology.clear()
        if self.uplink is not None and self.uplink.link is not None:
            self.uplink.link.close("left the cluster")
        for name in list(self._peers):
            self._stop_peer(name, "left the cluster")
        self.routes.wipe_others()
        self.membership.reset(min_incarnation)
        self.save_view()

