"""The state a ClusterService's parts share: declared once, so each part is type-checked.

``ClusterService`` is assembled from ``cluster_links.ClusterLinks`` (links, liveness) and
``cluster_messages.ClusterMessages`` (what nodes tell each other); both derive from
``ClusterState``, which declares the attributes ``ClusterService.__init__`` sets and the few
methods one part calls on another (defined for real in the part that owns them).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import Membership, RouteTable, Topology

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_barrier import RouteBarriers
    from mqttmesh.runtime.cluster_forwarder import ClusterForwarder
    from mqttmesh.runtime.cluster_health import ClusterHealth
    from mqttmesh.runtime.cluster_links import Peer
    from mqttmesh.runtime.cluster_ops import ClusterOps
    from mqttmesh.runtime.cluster_relay import Relay
    from mqttmesh.runtime.cluster_replicants import CoreReplicants
    from mqttmesh.runtime.cluster_retained import RetainedReplicator
    from mqttmesh.runtime.cluster_sessions import ClusterSessions
    from mqttmesh.runtime.cluster_shared import ClusterShared
    from mqttmesh.runtime.dist_transport import DistTransport
    from mqttmesh.runtime.peer_link import PeerLink
    from mqttmesh.runtime.replicant_uplink import ReplicantUplink

__all__ = ["ClusterState"]


class ClusterState:
    """Attributes of a ClusterService (set in ``ClusterService.__init__``)."""

    name: str
    host: str
    cookie: str
    role: str
    cluster_name: str
    epoch: str
    settings: Any
    broker: Any
    loop: asyncio.AbstractEventLoop | None
    running: bool
    left_manually: bool
    membership: Membership
    routes: RouteTable
    topology: Topology
    transport: DistTransport
    forwarder: ClusterForwarder
    ops: ClusterOps
    barriers: RouteBarriers
    retained: RetainedReplicator
    sessions: ClusterSessions
    shared: ClusterShared
    health: ClusterHealth
    relay: Relay
    replicants: CoreReplicants
    uplink: ReplicantUplink | None
    _peers: dict[str, Peer]
    _links: set[PeerLink]
    _closed_traffic: list[int]
    _refusals: dict[tuple[str, str, str], tuple[float | None, int]]
    _tg: asyncio.TaskGroup | None

    # -- defined in the part that owns them ------------------------------------------------
    async def _on_dist_message(self, link: Any, msg: list[Any]) -> None:
        raise NotImplementedError  # cluster_messages

    async def _on_ctl_message(self, link: PeerLink, msg: list[Any]) -> None:
        raise NotImplementedError  # cluster_messages

    def _own_digest_msg(self) -> list[Any]:
        raise NotImplementedError  # cluster_messages

    def start_peer(self, name: str) -> None:
        raise NotImplementedError  # cluster_links

    def _stop_peer(self, name: str, reason: str) -> None:
        raise NotImplementedError  # cluster_links

    def core_links(self) -> list[PeerLink]:
        raise NotImplementedError  # cluster_links

    def stream_links(self) -> list[PeerLink]:
        raise NotImplementedError  # cluster_links

    def peer_link(self, name: str) -> Any:
        raise NotImplementedError  # cluster_links

    def save_view(self) -> None:
        raise NotImplementedError  # cluster_service
