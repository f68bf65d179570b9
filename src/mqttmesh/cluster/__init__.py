"""mqttmesh.cluster: sans-IO cluster state (handshake, wire, membership, route table)."""

from mqttmesh.cluster.handshake import (
    KIND_CTL,
    KIND_NODE,
    REFUSE,
    SUPPORTED_VERSIONS,
    ClientHandshake,
    PeerInfo,
    ServerHandshake,
)
from mqttmesh.cluster.membership import ClusterStatus, Member, Membership, MemberStatus
from mqttmesh.cluster.topology import Topology, pick_core
from mqttmesh.cluster.routes import ApplyResult, Delta, Digest, RouteTable, filter_hash
from mqttmesh.cluster.wire import (
    MAX_FRAME,
    PRE_AUTH_MAX_FRAME,
    FrameDecoder,
    FrameError,
    encode_frame,
    v1,
    v2,
)

__all__ = [
    "ClientHandshake", "ServerHandshake", "PeerInfo", "KIND_CTL", "KIND_NODE",
    "REFUSE", "SUPPORTED_VERSIONS",
    "Membership", "Member", "MemberStatus", "ClusterStatus",
    "Topology", "pick_core",
    "RouteTable", "Delta", "Digest", "ApplyResult", "filter_hash",
    "FrameDecoder", "FrameError", "encode_frame", "v1", "v2", "MAX_FRAME", "PRE_AUTH_MAX_FRAME",
]
