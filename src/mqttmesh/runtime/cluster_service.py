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

The class is assembled from parts sharing ``cluster_base.ClusterState``: links, connectors
and liveness in ``cluster_links``; what nodes tell each other (route sync, views, topology,
the replicant uplink) in ``cluster_messages``; core/replicant roles in
``cluster_replicants``, ``replicant_uplink`` and ``cluster_relay`` (``docs/scaling.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mqttmesh.cluster import Membership, RouteTable, Topology, v1
from mqttmesh.config import dist_port, node_host, rpc_port
from mqttmesh.discovery import DiscoveryLoop, discovery_config_from_settings, make_strategy
from mqttmesh.errors import ClusterError
from mqttmesh.logs import log_event
from mqttmesh.runtime.cluster_barrier import RouteBarriers
from mqttmesh.runtime.cluster_forwarder import ClusterForwarder
from mqttmesh.runtime.cluster_health import ClusterHealth
from mqttmesh.runtime.cluster_links import ClusterLinks, Peer
from mqttmesh.runtime.cluster_messages import ClusterMessages
from mqttmesh.runtime.cluster_ops import ClusterOps
from mqttmesh.runtime.cluster_relay import Relay
from mqttmesh.runtime.cluster_replicants import CoreReplicants
from mqttmesh.runtime.cluster_retained import RetainedReplicator
from mqttmesh.runtime.cluster_sessions import ClusterSessions
from mqttmesh.runtime.cluster_shared import ClusterShared
from mqttmesh.runtime.cluster_store import check_identity, load_view, save_view
from mqttmesh.runtime.dist_transport import DistTransport
from mqttmesh.runtime.epmd import EpmdAgent
from mqttmesh.runtime.replicant_uplink import ReplicantUplink
from mqttmesh.runtime.peer_link import HEARTBEAT_INTERVAL, PeerLink

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


class ClusterService(ClusterLinks, ClusterMessages):
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
        self._peers: dict[str, Peer] = {}
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

