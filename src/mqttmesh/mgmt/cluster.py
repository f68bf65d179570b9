"""Cluster operations for the front-ends (cli, later api): talk to a node as a ctl client.

``call(settings, op, args)`` connects to the node named in ``settings`` on its distribution
port (4370 + offset, on the host of its name), authenticates with the cookie as a ``ctl``
client and runs one operation. Every failure is a ``ClusterError`` with a one-line reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mqttmesh.cluster import KIND_CTL, ClientHandshake
from mqttmesh.errors import ClusterError, ConfigError, HandshakeError
from mqttmesh.runtime.dist_transport import DistTransport
from mqttmesh.runtime.peer_link import LinkUnreachable

__all__ = [
    "call", "call_sync", "status", "cluster_stats", "join", "leave", "force_leave", "routes_verify",
    "route_explain", "routes_list",
]

DEFAULT_TIMEOUT = 30.0


async def call(settings: Any, op: str, args: dict[str, Any] | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Run one operation on the node of ``settings``.

    Raises:
        ClusterError: node unreachable, cookie refused, or the operation failed.
    """
    name = settings.node.name
    hs = ClientHandshake(settings.node.cookie, KIND_CTL, name, settings.cluster.name, "ctl")
    try:
        transport = DistTransport.from_settings(settings)  # TLS, IPv6, epmd as the node
        link = await transport.open_link(name, "dist", hs, None)
    except ConfigError as exc:
        raise ClusterError(str(exc)) from None
    except LinkUnreachable as exc:
        raise ClusterError(f"node {name} is not running or unreachable ({exc})") from None
    except HandshakeError as exc:
        reason = str(exc).removeprefix("refused by peer: ")
        raise ClusterError(f"node {name} refused this command: {reason}") from None
    loop = asyncio.get_running_loop()
    reader = loop.create_task(link.run(lambda _l, _m: None))
    beat = loop.create_task(link.heartbeat())  # long operations (join) outlive the timeout
    try:
        return await link.request(op, args or {}, timeout)
    finally:
        link.close("done")
        reader.cancel()
        beat.cancel()
        await asyncio.gather(reader, beat, return_exceptions=True)


def call_sync(settings: Any, op: str, args: dict[str, Any] | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> Any:
    """``call`` from synchronous code (the CLI)."""
    return asyncio.run(call(settings, op, args, timeout))


def status(settings: Any) -> dict[str, Any]:
    return dict(call_sync(settings, "status"))


def join(settings: Any, node: str, dry_run: bool = False) -> dict[str, Any]:
    return dict(call_sync(settings, "join", {"node": node, "dry_run": dry_run}))


def leave(settings: Any) -> dict[str, Any]:
    return dict(call_sync(settings, "leave"))


def force_leave(settings: Any, node: str) -> dict[str, Any]:
    return dict(call_sync(settings, "force_leave", {"node": node}))


def routes_verify(settings: Any) -> dict[str, Any]:
    return dict(call_sync(settings, "routes_verify"))


def route_explain(settings: Any, topic: str) -> dict[str, Any]:
    return dict(call_sync(settings, "route_explain", {"topic": topic}))


def cluster_stats(settings: Any) -> dict[str, Any]:
    return dict(call_sync(settings, "cluster_stats"))


def routes_list(settings: Any) -> dict[str, Any]:
    return dict(call_sync(settings, "routes_list"))
