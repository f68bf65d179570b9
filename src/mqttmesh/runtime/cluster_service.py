"""ClusterService: this node's membership, links to every member, route replication.

Theory of operation
-------------------
One object per node, built from ``Settings`` (``ClusterService(settings, broker)``), plugged
into ``Node`` as the broker's ``ClusterHooks`` (``route_added``, ``route_removed``,
``forward``). Construction checks the node's identity in ``node.data_dir`` (``node_name``:
the name the data dir belongs to), loads the persisted view (``cluster.json``) and binds the
distribution port (4370 + offset) and the RPC port (5370 + offset) on the host of the node's
name, so a taken port or a wrong name stops start-up with one clear line.

``start()`` serves both ports and runs, in one TaskGroup: a connector per member keeping
an outgoing distribution link (authenticated, bound to our host, reconnecting with
exponential backoff 0.1 s .. 2 s) and one keeping an outgoing RPC link
(``cluster_forwarder``), and a ticker (heartbeats every second, gossip of the view and of
our route digest every 2 s, autoclean). A member is *running* while our outgoing link to it
is up (fixed-timeout heartbeat failure detector, ``peer_link``); when it goes down its routes
stop being matched at once.

Each node ships its own route changes (``RouteTable`` deltas) on its outgoing links; every
link start and every gossip round sends our digest, and a replica that differs asks for a
snapshot (``cluster.routes``). Views are merged on receipt (``cluster.membership``); a node
that is not a member gets ``BYE`` with the tombstones it needs (a removed node goes
standalone, a node that missed our leave forgets us). Operator operations (join, leave,
force-leave, status, routes verify, route explain) live in ``cluster_ops``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mqttmesh.cluster import (
    KIND_CTL,
    KIND_NODE,
    ApplyResult,
    ClientHandshake,
    Digest,
    Member,
    Membership,
    MemberStatus,
    RouteTable,
    ServerHandshake,
    Topology,
    v1,
    v2,
)
from mqttmesh.cluster.wire import session_ops, shared_ops
from mqttmesh.config import dist_port, node_host, rpc_port
from mqttmesh.discovery import DiscoveryLoop, discovery_config_from_settings, make_strategy
from mqttmesh.errors import ClusterError, HandshakeError
from mqttmesh.logs import log_event
from mqttmesh.runtime.cluster_barrier import RouteBarriers
from mqttmesh.runtime.cluster_forwarder import ClusterForwarder
from mqttmesh.runtime.cluster_health import ClusterHealth
from mqttmesh.runtime.cluster_ops import ClusterOps
from mqttmesh.runtime.cluster_relay import Relay
from mqttmesh.runtime.cluster_replicants import ATTACH, CoreReplicants
from mqttmesh.runtime.cluster_retained import RetainedReplicator
from mqttmesh.runtime.cluster_sessions import ClusterSessions
from mqttmesh.runtime.cluster_shared import ClusterShared
from mqttmesh.runtime.cluster_store import check_identity, load_view, save_view
from mqttmesh.runtime.dist_transport import DistTransport
from mqttmesh.runtime.epmd import EpmdAgent
from mqttmesh.runtime.replicant_uplink import ReplicantUplink
from mqttmesh.runtime.peer_link import (
    HEARTBEAT_INTERVAL,
    LinkUnreachable,
    PeerLink,
)

__all__ = ["ClusterService", "ClusterStats", "check_identity", "GOSSIP_INTERVAL"]  # check_identity: re-export

log = logging.getLogger("mqttmesh.cluster")

GOSSIP_INTERVAL = 2.0
REFUSAL_LOG_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """A snapshot of the cluster side of a node (for $SYS, the API, metrics)."""

    running_nodes: int
    stopped_nodes: int
    links: int                  # open links, both directions, distribution + RPC + ctl
    routes: int                 # distinct filters routed anywhere in the cluster
    retained_versions: int
    messages_forwarded: int     # publishes sent to at least one other node
    messages_received: int      # messages dispatched on behalf of other nodes
    duplicates_dropped: int     # retried forward batches already dispatched
    forwards_unacked: int       # QoS 1/2 messages waiting for a peer's ack
    link_bytes_out: int = 0     # cluster link traffic since start (frames, both ports)
    link_bytes_in: int = 0
    link_messages_out: int = 0  # wire messages (heartbeats included)
    link_messages_in: int = 0
    relayed: int = 0            # messages passed on between two other nodes
    replicants: int = 0         # replicants attached to this core
    forward_gaps: int = 0       # relayed batches held back: an earlier one was missing
    forward_retries: int = 0    # resends to relayed destinations that stopped acking


class _Peer:
    __slots__ = ("name", "link", "tasks")

    def __init__(self, name: str) -> None:
        self.name = name
        self.link: PeerLink | None = None
        self.tasks: list[asyncio.Task[None]] = []


class ClusterService:
    """The cluster side of one node.

    Args:
        settings: the node's Settings.
        broker: the node's Broker (may be given later to ``start``).

    Raises:
        ClusterError: another node's data dir, a port that cannot be bound.
    """

    def __init__(self, settings: Any, broker: Any = None) -> None:
        node = settings.node
        self.settings = settings
        self.name: str = node.name
        self.host = node_host(self.name)
        self.cookie: str = node.cookie
        self._discovery: DiscoveryLoop | None = None
        self.role: str = node.role
        self.cluster_name: str = settings.cluster.name
        self.data_dir: str = node.data_dir
        self.dist_port = dist_port(self.name)
        self.rpc_port = rpc_port(self.name)
        self.autoclean: float | None = settings.cluster.autoclean
        self.broker = broker
        check_identity(self.data_dir, self.name)
        self.membership = self._load_view()
        self.epoch = secrets.token_hex(6)
        self.routes = RouteTable(self.name, self.epoch)
        self.forwarder = ClusterForwarder(self)
        self.ops = ClusterOps(self)
        self.barriers = RouteBarriers()
        self.retained = RetainedReplicator(self)
        self.sessions = ClusterSessions(self)  # client registry, takeover (issue 6)
        self.shared = ClusterShared(self)  # shared groups picked cluster-wide (issue 6)
        self.health = ClusterHealth(self)  # autoclean + autoheal (docs/faults.md)
        # core/replicant clusters (docs/scaling.md): who follows which core, relays
        self.topology = Topology(lambda name: self.membership.incarnation(name))
        self.relay = Relay(self)
        self.replicants = CoreReplicants(self)
        self.uplink: ReplicantUplink | None = \
            ReplicantUplink(self) if self.role == "replicant" else None
        self.left_manually = False
        self._refusals: dict[tuple[str, str, str], tuple[float | None, int]] = {}
        self.hooks: Any = self
        self.loop: asyncio.AbstractEventLoop | None = None
        self.running = False
        self._peers: dict[str, _Peer] = {}
        self._links: set[PeerLink] = set()
        self._closed_traffic = [0, 0, 0, 0]
        self._pending_deltas: list[Any] = []
        self._deltas_scheduled = False
        self._tg: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[None] | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self.transport = DistTransport.from_settings(settings)  # proto_dist, TLS, epmd
        self._dist_sock, self.dist_port = self.transport.bind_dist(self.name)
        try:
            self._rpc_sock = self.transport.bind(self.host, self.rpc_port, "rpc")
        except ClusterError:
            self._dist_sock.close()
            raise

    # -- Node plug-in ----------------------------------------------------------------------
    # ``hooks`` (the broker's ClusterHooks) is this object itself, set in __init__.

    async def start(self, broker: Any = None, task_group: asyncio.TaskGroup | None = None
                    ) -> None:
        """Serve the cluster ports and start the links (tasks in ``task_group`` if given)."""
        if broker is not None:
            self.broker = broker
        self.loop = asyncio.get_running_loop()
        self.running = True
        if self.broker is not None:
            for topic_filter in list(self.broker.local_filters()):
                self.routes.add_local(topic_filter)
            self.retained.load_persisted()  # before any link: versions are back too
        self._servers.append(await self.transport.serve(
            self._accept_dist, self._dist_sock,
            lambda address, reason: self._log_refusal("link refused", reason, address)))
        self._servers.append(await self.transport.serve(
            self._accept_rpc, self._rpc_sock,
            lambda address, reason: self._log_refusal("rpc link refused", reason, address)))
        ready = asyncio.Event()
        spawn = task_group.create_task if task_group is not None else asyncio.create_task
        self._main = spawn(self._run(ready), name="cluster")
        await ready.wait()
        if self.transport.use_epmd:
            agent = EpmdAgent(self.name, self.host, self.dist_port, self.transport.family,
                              self.transport.epmd_port)
            self._epmd_task = spawn(agent.run(), name="cluster-epmd")
            await agent.wait_registered(5.0)
        self._start_discovery(spawn)
        log_event(log, "info", "cluster service started", node=self.name,
                  distribution=f"{self.host}:{self.dist_port}",
                  rpc=f"{self.host}:{self.rpc_port}",
                  members=",".join(self.membership.members()))

    async def stop(self) -> None:
        """Close every link and the ports; the membership stays persisted (not a leave)."""
        if not self.running:
            return
        self.running = False
        self.health.stop()
        if getattr(self, "_epmd_task", None) is not None:
            self._epmd_task.cancel()  # unregisters (or stops serving the port mapper)
        if self._discovery is not None:
            self._discovery.stop()
        for server in self._servers:
            server.close()
        for link in list(self._links):
            link.close("node stopping")
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        self.save_view()
        self.retained.close()  # flush the persisted retained messages
        log_event(log, "info", "cluster service stopped", node=self.name)

    async def _run(self, ready: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                now = asyncio.get_running_loop().time()
                for peer in self.membership.peers():
                    self.membership.mark_down(peer, now)
                    self.routes.set_down(peer, True)
                    self.start_peer(peer)
                if self.uplink is not None:
                    tg.create_task(self.uplink.run(), name="cluster-uplink")
                tg.create_task(self._ticker(), name="cluster-ticker")
                ready.set()
        finally:
            self._tg = None
            ready.set()

    # -- ClusterHooks ----------------------------------------------------------------------
    def route_added(self, topic_filter: str) -> None:
        delta = self.routes.add_local(topic_filter)
        if delta is not None:
            self._queue_delta(delta)

    def route_removed(self, topic_filter: str) -> None:
        if self.sessions.defer_route_removal(topic_filter):
            return  # a session is being handed over: removed when the hand-off ends
        delta = self.routes.remove_local(topic_filter)
        if delta is not None:
            self._queue_delta(delta)

    def forward(self, message: Any) -> None:
        if message.retain:
            self.retained.local(message)
        self.forwarder.forward(message)
        if self.shared.table:
            self.shared.route(message)
        if self.sessions.handoffs:
            self.sessions.on_message(message, True)

    def session_connecting(self, client_id: str, clean_start: bool) -> bool:
        return self.sessions.session_connecting(client_id, clean_start)

    def session_ended(self, client_id: str) -> None:
        self.sessions.session_ended(client_id)

    def shared_added(self, group: str, real_filter: str) -> None:
        self.shared.added(group, real_filter)

    def shared_removed(self, group: str, real_filter: str) -> None:
        self.shared.removed(group, real_filter)

    def shared_redispatch(self, message: Any, group: str, real_filter: str) -> None:
        self.shared.redispatch(message, group, real_filter)

    def _queue_delta(self, delta: Any) -> None:
        self._pending_deltas.append(delta)
        if not self._deltas_scheduled and self.loop is not None and self.running:
            self._deltas_scheduled = True
            self.loop.call_soon(self._flush_deltas)

    def _flush_deltas(self) -> None:
        self._deltas_scheduled = False
        deltas, self._pending_deltas = self._pending_deltas, []
        if not deltas:
            return
        msg = [v1.ROUTE_DELTAS, self.name, self.epoch, deltas[0].version,
               [[d.op, d.topic_filter] for d in deltas]]
        for link in self.stream_links():
            link.send(msg)
            link.flush()  # now: a peer should learn a new route as early as possible

    # -- links -----------------------------------------------------------------------------
    def track(self, link: PeerLink) -> None:
        self._links.add(link)

    def untrack(self, link: PeerLink) -> None:
        if link in self._links:
            self._links.discard(link)
            closed = self._closed_traffic
            closed[0] += link.bytes_out
            closed[1] += link.bytes_in
            closed[2] += link.messages_out
            closed[3] += link.messages_in

    def traffic(self) -> tuple[int, int, int, int]:
        """(bytes out, bytes in, messages out, messages in) on cluster links since start."""
        out = list(self._closed_traffic)
        for link in self._links:
            out[0] += link.bytes_out
            out[1] += link.bytes_in
            out[2] += link.messages_out
            out[3] += link.messages_in
        return out[0], out[1], out[2], out[3]

    def direct_link(self, name: str) -> PeerLink | None:
        """Our outgoing distribution link to core ``name`` if it is up."""
        peer = self._peers.get(name)
        if peer is None or peer.link is None or peer.link.closed:
            return None
        return peer.link

    def peer_link(self, name: str) -> Any:
        """A link to ``name`` if it is reachable: direct, or relayed (``cluster_relay``)."""
        if not self.membership.is_up(name):
            return None
        return self.relay.link_to(name)

    def core_links(self) -> list[PeerLink]:
        """Our outgoing distribution links to cores that are up (the core mesh)."""
        return [p.link for p in self._peers.values() if p.link is not None
                and not p.link.closed]

    def stream_links(self) -> list[PeerLink]:
        """Where our own replicated data goes: the core mesh and our replicants (a core),
        or the uplink (a replicant)."""
        if self.uplink is not None:
            link = self.uplink.link_for(False)
            return [link] if link is not None else []
        return self.core_links() + [link for link in self.replicants.links.values()
                                    if not link.closed]

    def up_links(self) -> list[Any]:
        """A link (direct or relayed) to every other member that is running."""
        out = []
        for name in self.membership.peers():
            link = self.peer_link(name)
            if link is not None:
                out.append(link)
        return out

    def start_peer(self, name: str) -> None:
        if name in self._peers or name == self.name or self._tg is None or not self.running:
            return
        if self.uplink is not None or self.membership.role_of(name) != "core":
            return  # replicants keep one uplink; cores do not dial replicants
        peer = self._peers[name] = _Peer(name)
        peer.tasks.append(self._tg.create_task(self._dist_connector(peer),
                                               name=f"cluster-link-{name}"))
        peer.tasks.append(self._tg.create_task(self.forwarder.connector(name),
                                               name=f"cluster-rpc-{name}"))

    def _stop_peer(self, name: str, reason: str) -> None:
        peer = self._peers.pop(name, None)
        if peer is None:
            return
        for task in peer.tasks:
            task.cancel()
        if peer.link is not None:
            peer.link.close(reason)
        self.forwarder.drop_peer(name)

    async def _dist_connector(self, peer: _Peer) -> None:
        name = peer.name
        address = self.transport.address(name)
        backoff = 0.1
        last_refusal = ""
        while self.running and self.membership.is_member(name):
            hs = ClientHandshake(self.cookie, KIND_NODE, self.name, self.cluster_name,
                                 self.role)
            try:
                link = await self.transport.open_link(name, "dist", hs, self.host)
            except LinkUnreachable:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            except HandshakeError as exc:
                if str(exc) != last_refusal:  # logged once per reason, not every retry
                    last_refusal = str(exc)
                    log_event(log, "warning", f"link refused: {_short(exc)}", peer=name,
                              address=address)
                await asyncio.sleep(max(backoff, 2.0))
                continue
            except Exception:  # a bug here must cost one retry, not the cluster service
                log.exception("opening a link failed", extra={"kv": {"peer": name}})
                await asyncio.sleep(2.0)
                continue
            if link.peer.name != name:
                log_event(log, "warning", "link refused: another node answers at the address",
                          peer=name, address=address, answered=link.peer.name)
                link.close("wrong node")
                await asyncio.sleep(2.0)
                continue
            backoff = 0.1
            last_refusal = ""
            peer.link = link
            self.track(link)
            self._on_up(name)
            link.send([v1.VIEW, self.health.wire_view()])
            link.send(self._own_digest_msg())
            link.send(self.retained.full_set())
            self.shared.on_link_up(link)
            self.sessions.on_link_up(link)
            try:
                await link.run(self._on_dist_message)
            finally:
                self.untrack(link)
                peer.link = None
                self._on_down(name, link.close_reason)

    async def _accept_dist(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        hs = ServerHandshake(self.cookie, self.name, self.cluster_name)
        try:
            link = await self.transport.accept_link(reader, writer, hs)
        except HandshakeError as exc:
            claimed = hs.claimed.name if hs.claimed is not None else "unknown"
            self._log_refusal("link refused", _short(exc), _address(writer), claimed=claimed)
            return
        self.track(link)
        try:
            if link.peer.kind == KIND_CTL:
                await link.run(self._on_ctl_message)
            elif self.uplink is not None:
                # a replicant is never linked to: answer join_check / join (refused), only
                await link.run(self._on_ctl_message)
            else:
                await link.run(self._on_dist_message)
        finally:
            self.untrack(link)
            if link.peer.role == "replicant" and link.peer.kind == KIND_NODE:
                self.replicants.link_closed(link)

    async def _accept_rpc(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        hs = ServerHandshake(self.cookie, self.name, self.cluster_name)
        try:
            link = await self.transport.accept_link(reader, writer, hs)
        except HandshakeError as exc:
            self._log_refusal("rpc link refused", _short(exc), _address(writer))
            return
        if link.peer.kind != KIND_NODE:
            link.close("ctl on the rpc port")
            return
        if self.uplink is not None:
            link.close("this node is a replicant: it takes no links from other nodes")
            return
        replicant = link.peer.role == "replicant"
        if replicant:
            old = self.replicants.rpc_links.get(link.peer.name)
            if old is not None and old is not link:
                old.close("replicant reconnected")
            self.replicants.rpc_links[link.peer.name] = link
            self.forwarder.link_up(link.peer.name)
        self.track(link)
        link.fair = True
        try:
            await link.run(self.forwarder.on_incoming)
        finally:
            self.untrack(link)
            if replicant and self.replicants.rpc_links.get(link.peer.name) is link:
                del self.replicants.rpc_links[link.peer.name]

    def _log_refusal(self, what: str, reason: str, address: str, **kv: Any) -> None:
        """Log a refused link once per (peer host, reason) every REFUSAL_LOG_INTERVAL s:
        a peer retrying (or an attacker hammering) does not flood the log."""
        now = self.loop.time() if self.loop is not None else 0.0
        key = (address.rpartition(":")[0], what, reason)
        last, suppressed = self._refusals.get(key, (None, 0))
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[key] = (last, suppressed + 1)
            return
        if len(self._refusals) > 1024:
            self._refusals.clear()
        self._refusals[key] = (now, 0)
        if suppressed:
            kv["repeated"] = suppressed
        log_event(log, "warning", f"{what}: {reason}", node=self.name, address=address, **kv)

    # -- liveness --------------------------------------------------------------------------
    def _on_up(self, name: str) -> None:
        self.routes.set_down(name, False)
        if self.membership.mark_up(name):
            log_event(log, "info", "node up", node=self.name, peer=name)
        self.replicants.refresh_liveness()
        self.replicants.broadcast_topology()

    def _on_down(self, name: str, reason: str) -> None:
        if not self.membership.is_member(name) or self.loop is None:
            return
        self.routes.set_down(name, True)
        self.barriers.gone(name)
        if self.membership.mark_down(name, self.loop.time()) and self.running:
            log_event(log, "warning", "node down", node=self.name, peer=name, reason=reason)
        self.replicants.refresh_liveness()
        self.replicants.broadcast_topology()

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

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        next_gossip = 0.0
        while True:
            for link in list(self._links):
                link.send([v1.HEARTBEAT])
            now = loop.time()
            if now >= next_gossip:
                next_gossip = now + GOSSIP_INTERVAL
                view = [v1.VIEW, self.health.wire_view()]
                digest = self._own_digest_msg()
                if self.uplink is None:  # cores: to the core mesh (replicants: below)
                    for link in self.core_links():
                        link.send(view)
                        link.send(digest)
                else:  # a replicant: its digest to its core (its view is the core's)
                    for link in self.stream_links():
                        link.send(digest)
                if self.uplink is None:
                    self.replicants.gossip(view)
                    self.replicants.purge_due(now)
                self.forwarder.retry_relayed()
                for peer in self.membership.peers():
                    self.start_peer(peer)
                self.retained.tick()
                if self.uplink is None:  # a replicant neither cleans nor heals: it follows
                    self.health.autoclean(now)
                    self.health.tick()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

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

    def _start_discovery(self, spawn: Callable[..., Any]) -> None:
        """Run the configured discovery strategy (none for ``manual``): it only finds
        candidates; joining goes through ``on_candidates`` and the ``ctl cluster join`` path."""
        config = discovery_config_from_settings(self.settings)
        if config.strategy == "manual":
            return
        strategy = make_strategy(config, self.name, self.cookie)
        self._discovery = DiscoveryLoop(strategy, self.on_candidates, config.interval)
        spawn(self._discovery.run(), name="cluster-discovery")
        log_event(log, "info", "discovery started", node=self.name, strategy=config.strategy)

    async def on_candidates(self, names: list[str]) -> None:
        """For ``discovery.DiscoveryLoop``: maybe join one of the discovered nodes."""
        await self.ops.auto_join(names)

    def routes_barrier(self, callback: Callable[[], None]) -> bool:
        """Optional ClusterHooks method: call ``callback`` once every running member holds
        the routes added so far (or after ``BARRIER_TIMEOUT``). Returns False when there is
        nothing to wait for (the callback is then not called): the broker may delay a SUBACK
        with it so that a publish on another node right after it is routed."""
        if self.loop is None:
            return False
        waiting = {p for p in self.membership.peers() if self.membership.is_up(p)}
        return self.barriers.add(self.routes.version, waiting, callback, self.loop)

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

    # -- persistence -----------------------------------------------------------------------
    def _load_view(self) -> Membership:
        return load_view(self.data_dir, self.name, self.role)

    def save_view(self) -> None:
        save_view(self.data_dir, self.membership)

    # -- introspection ---------------------------------------------------------------------
    def statistics(self) -> ClusterStats:
        status = self.membership.status()
        unacked = sum(box.unacked for box in self.forwarder.outboxes.values())
        bytes_out, bytes_in, messages_out, messages_in = self.traffic()
        return ClusterStats(
            link_bytes_out=bytes_out, link_bytes_in=bytes_in,
            link_messages_out=messages_out, link_messages_in=messages_in,
            relayed=self.relay.relayed, replicants=len(self.replicants.links),
            forward_gaps=self.forwarder.inbox.gaps, forward_retries=self.forwarder.retries,
            running_nodes=len(status.running_nodes),
            stopped_nodes=len(status.stopped_nodes),
            links=len(self._links),
            routes=len(self.routes),
            retained_versions=len(self.retained.versions),
            messages_forwarded=self.forwarder.forwarded,
            messages_received=self.forwarder.received,
            duplicates_dropped=self.forwarder.inbox.duplicates,
            forwards_unacked=unacked,
        )


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text.removeprefix("refused by peer: ")


def _address(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return "?"
