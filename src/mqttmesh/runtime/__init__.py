"""mqttmesh.runtime: asyncio I/O around the sans-IO broker (listeners, links, timers, Node)."""

from mqttmesh.runtime.client_link import ClientLink, FlushScheduler, WsClientLink
from mqttmesh.runtime.listeners import Listener, ListenerBindError, ListenerSpec, listener_specs
from mqttmesh.runtime.node import ClusterService, Node, build_broker_config

__all__ = [
    "Node",
    "ClusterService",
    "build_broker_config",
    "Listener",
    "ListenerSpec",
    "ListenerBindError",
    "listener_specs",
    "ClientLink",
    "WsClientLink",
    "FlushScheduler",
]
