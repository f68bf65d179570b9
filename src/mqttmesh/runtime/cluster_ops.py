"""Operator operations of a ClusterService: join, leave, force-leave, status, routes verify,
route explain, and the requests nodes send each other for them.

Each ``op_*`` coroutine returns a JSON-able dict or raises ``ClusterError`` with a one-line
reason; ``handle_request`` maps a ``REQUEST`` from ctl (``KIND_CTL`` links) or from another
node to them. Requests between nodes: ``join`` (a joiner asks a member), ``join_check``
(``--dry-run``), ``route_digests`` (for ``routes verify``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import KIND_CTL, KIND_NODE, ClientHandshake, Member, Membership, v1
from mqttmesh.cluster.membership import MemberStatus
from mqttmesh.config import dist_port, node_host, validate_node_name
from mqttmesh.errors import ClusterError, ConfigError, HandshakeError, ProtocolError
from mqttmesh.logs import log_event
from mqttmesh.protocol import validate_topic_name
from mqttmesh.runtime.peer_link import LinkUnreachable, PeerLink

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService

__all__ = ["ClusterOps", "CTL_OPS"]

log = logging.getLogger("mqttmesh.cluster")

CTL_OPS = ("status", "join", "leave", "force_leave", "routes_verify", "route_explain",
           "routes_list")
JOIN_WAIT = 5.0
"""How long join waits for links to every member before printing the status."""


class ClusterOps:
    """The operations of one ClusterService (``service.ops``).

    Args:
        service: the node's ClusterService.
    """

    def __init__(self, service: ClusterService) -> None:
        self.s = service
        self._refused: dict[str, str] = {}  # discovered node -> why its link was refused
        # ``mgmt.*`` requests (runtime/http_ops.NodeOps), for ctl clients and members;
        # ``on_joined`` coroutines run after a successful join (user table sync).
        self.local_ops: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {}
        self.on_joined: list[Callable[[str], Awaitable[None]]] = []

    # -- request dispatch ------------------------------------------------------------------
    async def handle_request(self, link: PeerLink, rid: int, op: str,
                             args: dict[str, Any]) -> None:
        try:
            result = await self._request(link, op, args)
        except ClusterError as exc:
            link.send([v1.REPLY, rid, False, str(exc)])
        except Exception as exc:  # a bug must not kill the link's reader
            log.exception("cluster request failed", extra={"kv": {"op": op}})
            link.send([v1.REPLY, rid, False, f"internal error: {exc.__class__.__name__}"])
        else:
            link.send([v1.REPLY, rid, True, result])

    async def _request(self, link: PeerLink, op: str,
                       args: dict[str, Any]) -> Any:
        handler = self.local_ops.get(op) if isinstance(op, str) else None
        if handler is not None:
            if link.peer.kind != KIND_CTL and not self.s.membership.is_member(link.peer.name):
                raise ClusterError(f"{link.peer.name} is not a member of this cluster")
            return await handler(args if isinstance(args, dict) else {})
        if link.peer.kind == KIND_CTL:
            if op == "status":
                return self.op_status()
            if op == "topology":
                return {"topology": self.op_topology()}
            if op == "cluster_stats":  # link traffic, routes, relays: bench/topology_cost.py
                return {"role": self.s.role, **dataclasses.asdict(self.s.statistics())}
            if op == "join":
                return await self.op_join(_str(args, "node"), bool(args.get("dry_run")))
            if op == "leave":
                return await self.op_leave()
            if op == "force_leave":
                return self.op_force_leave(_str(args, "node"))
            if op == "routes_verify":
                return await self.op_routes_verify()
            if op == "route_explain":
                return self.op_route_explain(_str(args, "topic"))
            if op == "routes_list":
                return self.op_routes_list()
            if op == "client_lookup":  # the client registry and session of one client id
                return self.s.sessions.lookup(_str(args, "client_id"))
            if op == "shared_list":  # shared groups -> nodes with members, as seen here
                return self.s.shared.listing()
            raise ClusterError(f"unknown operation {op[:40]!r}")
        if op == "join":
            return self._accept_join(link, args)
        if op == "join_check":
            return {"members": self.s.membership.members(), "cluster": self.s.cluster_name,
                    "role": self.s.role, "replicants": len(self.s.replicants.links),
                    "cores": self.s.membership.members_of_role("core")}
        if op == "route_digests":
            if not self.s.membership.is_member(link.peer.name):
                raise ClusterError(f"{link.peer.name} is not a member of this cluster")
            return {n: [d.epoch, d.version, d.hash, d.count]
                    for n, d in self.s.routes.digests().items()}
        raise ClusterError(f"unknown operation {op[:40]!r}")

    # -- status ----------------------------------------------------------------------------
    def op_status(self) -> dict[str, Any]:
        s = self.s
        m = s.membership
        status = m.status()
        running = set(status.running_nodes)
        attachments = self._attachments()
        nodes = []
        for name in m.members():
            role = m.role_of(name)
            nodes.append({"name": name, "role": role,
                          "core": attachments.get(name) if role == "replicant" else None,
                          "status": "running" if name in running else "stopped"})
        return {"running_nodes": list(status.running_nodes),
                "stopped_nodes": list(status.stopped_nodes),
                "nodes": nodes}

    def _attachments(self) -> dict[str, str]:
        """Replicant -> the core it follows (this node's own uplink included)."""
        s = self.s
        attachments = s.topology.attachments()
        if s.uplink is not None and s.uplink.core is not None:
            attachments[s.name] = s.uplink.core
        return attachments

    def op_topology(self) -> list[dict[str, Any]]:
        """EMQX 5 ``GET /cluster/topology``: each core with the replicants following it."""
        s = self.s
        attachments = self._attachments()
        return [{"core_node": core,
                 "replicant_nodes": [{"node": r} for r, c in sorted(attachments.items())
                                     if c == core]}
                for core in s.membership.members_of_role("core")]

    # -- join ------------------------------------------------------------------------------
    async def op_join(self, target: str, dry_run: bool = False
                      ) -> dict[str, Any]:
        try:
            validate_node_name(target, "NODE")
        except ConfigError as exc:
            raise ClusterError(f"invalid node name {target!r}: {exc.reason}") from None
        if target == self.s.name:
            raise ClusterError("a node cannot join itself")
        if self.s.uplink is not None:
            raise ClusterError("this node is a replicant: it attaches to a core found by "
                               "discovery (cluster.discovery_strategy), it does not join")
        if self.s.membership.is_member(target):
            raise ClusterError(f"this node is already in a cluster with {target}")
        host, port = node_host(target), dist_port(target)
        hs = ClientHandshake(self.s.cookie, KIND_NODE, self.s.name, self.s.cluster_name, self.s.role)
        try:
            link = await self.s.transport.open_link(target, "dist", hs, self.s.host)
        except LinkUnreachable as exc:
            log_event(log, "warning", "join failed: node unreachable", node=self.s.name,
                      peer=target, address=f"{host}:{port}")
            raise ClusterError(f"node {target} is unreachable: {exc}") from None
        except HandshakeError as exc:
            reason = str(exc).removeprefix("refused by peer: ")
            log_event(log, "warning", f"link refused: {reason}", node=self.s.name, peer=target,
                      address=f"{host}:{port}")
            raise ClusterError(f"node {target} refused the link: {reason}") from None
        reader = asyncio.get_running_loop().create_task(link.run(lambda _l, _m: None))
        try:
            if link.peer.name != target:
                raise ClusterError(f"the node at {host}:{port} is {link.peer.name}, "
                                   f"not {target}")
            info = await link.request("join_check", {})
            if isinstance(info, dict) and info.get("role", "core") != "core":
                raise ClusterError(f"{target} is a replicant: join a core node")
            if dry_run:
                return self._dry_run_report(target, info)
            if self._core_peers():
                log_event(log, "info", "leaving the current cluster to join another",
                          node=self.s.name, target=target)
                await self.op_leave()
            elif self.s.membership.clustered:  # only replicants follow us: they re-attach
                self.s.replicants.drop_all("this core joins another cluster")
            own = self.s.membership.incarnation(self.s.name)
            result = await link.request("join", {"node": self.s.name, "role": self.s.role,
                                                 "incarnation": own})
        finally:
            link.close("join done")
            reader.cancel()
        try:
            entries = Membership.from_wire(result["view"])
        except (KeyError, TypeError):
            raise ClusterError(f"{target} answered the join with nonsense") from None
        dropped = self.s.routes.wipe_others()
        wiped = self.s.retained.wipe()
        self.s.membership.adopt({e.name: e for e in entries})
        if not self.s.membership.is_member(self.s.name):
            self.s.membership.reset()
            raise ClusterError(f"{target} did not admit this node")
        now = asyncio.get_running_loop().time()
        for peer in self.s.membership.peers():
            self.s.membership.mark_down(peer, now)
            self.s.routes.set_down(peer, True)
            self.s.start_peer(peer)
        self.s.save_view()
        self.s.left_manually = False
        log_event(log, "info", "joined the cluster", node=self.s.name, via=target,
                  members=",".join(self.s.membership.members()), routes_dropped=dropped,
                  retained_dropped=wiped)
        deadline = now + JOIN_WAIT
        while asyncio.get_running_loop().time() < deadline and \
                self.s.membership.status().stopped_nodes:
            await asyncio.sleep(0.05)
        for hook in self.on_joined:
            try:
                await hook(target)
            except Exception:
                log.exception("join hook failed")
        return self.op_status()

    def _dry_run_report(self, target: str, info: Any) -> dict[str, Any]:
        stats = None
        if self.s.broker is not None:
            try:
                stats = self.s.broker.statistics()
            except Exception:
                stats = None
        others = sum(len(self.s.routes.filters_of(n)) for n in self.s.routes.nodes()
                     if n != self.s.name)
        return {
            "dry_run": True,
            "target": target,
            "target_members": list(info.get("members", [])) if isinstance(info, dict) else [],
            "would_leave": self.s.membership.peers(),
            "routes_dropped": others,
            "own_routes_kept": len(self.s.routes.own_filters()),
            "retained_replaced": getattr(stats, "retained", 0),
            "sessions_kept": getattr(stats, "sessions", 0),
        }

    def _accept_join(self, link: PeerLink, args: dict[str, Any]
                     ) -> dict[str, Any]:
        joiner = _str(args, "node")
        if self.s.uplink is not None:
            raise ClusterError(f"node {self.s.name} is a replicant: join a core node")
        if args.get("role") == "replicant":
            raise ClusterError(f"{joiner} is a replicant: replicants attach by discovery")
        if joiner != link.peer.name:
            raise ClusterError("a node may only ask to join for itself")
        if joiner == self.s.name:
            raise ClusterError("a node cannot join itself")
        role = args.get("role")
        if not isinstance(role, str):
            role = "core"
        claimed = args.get("incarnation")
        if not isinstance(claimed, int):
            claimed = 0
        was_member = self.s.membership.is_member(joiner)
        if was_member:
            self.s.forget(joiner)  # a rejoin: its old replicated routes go
        member = self.s.membership.admit(joiner, role, claimed)
        if self.s.loop is not None:
            self.s.membership.mark_down(joiner, self.s.loop.time())
        self.s.routes.set_down(joiner, True)
        self.s.start_peer(joiner)
        self.s.save_view()
        self.s.broadcast_view()
        log_event(log, "info", "node joined", node=self.s.name, peer=joiner,
                  incarnation=member.incarnation)
        return {"view": self.s.membership.to_wire()}

    # -- discovery -------------------------------------------------------------------------
    async def auto_join(self, candidates: list[str]) -> str | None:
        """What a discovery round does with the names it found (``DiscoveryLoop``'s
        ``on_candidates``): join one of them by the ``join`` path, or nothing.

        Rules: a node in a cluster never leaves it for discovery, and a node that left by
        ``ctl cluster leave`` is not pulled back in until it restarts. A standalone node joins
        the first candidate (in name order) that is already in a cluster, else the first
        standalone candidate whose name sorts before its own (so two standalone nodes never
        join each other at once). Unreachable candidates are skipped. Returns the node
        joined, or None.
        """
        s = self.s
        if s.uplink is not None:  # a replicant attaches to a core instead
            s.uplink.on_candidates(candidates)
            return None
        if self._core_peers() or s.left_manually:
            return None  # (replicants attached to a lone core do not make it a cluster)
        ranked: list[tuple[int, str]] = []
        for name in sorted(set(candidates) - {s.name}):
            try:
                info = await self._probe(name)
            except HandshakeError as exc:
                # a discovered node of another cluster (wrong cookie/name): say why, once
                if self._refused.get(name) != str(exc):
                    self._refused[name] = str(exc)
                    log_event(log, "warning", "not joining discovered node", node=s.name,
                              peer=name, reason=str(exc))
                continue
            except ClusterError as exc:
                log_event(log, "debug", "discovered node not reachable", peer=name,
                          reason=str(exc))
                continue
            self._refused.pop(name, None)
            if isinstance(info, dict) and info.get("role", "core") != "core":
                continue  # a replicant is never joined to
            members = info.get("cores", info.get("members")) if isinstance(info, dict) \
                else None
            clustered = isinstance(members, list) and len(members) > 1
            if clustered or name < s.name:
                ranked.append((0 if clustered else 1, name))
        for _, name in sorted(ranked):
            if self._core_peers():
                return None  # somebody joined us meanwhile
            try:
                await self.op_join(name)
            except ClusterError as exc:
                log_event(log, "warning", "automatic join failed", node=s.name, peer=name,
                          reason=str(exc))
                continue
            log_event(log, "info", "joined a discovered node", node=s.name, peer=name)
            return name
        return None

    def _core_peers(self) -> list[str]:
        m = self.s.membership
        return [p for p in m.peers() if m.role_of(p) == "core"]

    async def _probe(self, target: str) -> Any:
        s = self.s
        try:
            validate_node_name(target, "NODE")
        except ConfigError as exc:
            raise ClusterError(f"invalid node name {target!r}: {exc.reason}") from None
        hs = ClientHandshake(s.cookie, KIND_NODE, s.name, s.cluster_name, s.role)
        try:
            link = await s.transport.open_link(target, "dist", hs, s.host)
        except HandshakeError as exc:
            raise HandshakeError(str(exc)) from None
        except LinkUnreachable as exc:
            raise ClusterError(str(exc)) from None
        reader = asyncio.get_running_loop().create_task(link.run(lambda _l, _m: None))
        try:
            return await link.request("join_check", {}, timeout=5.0)
        finally:
            link.close("probe done")
            reader.cancel()

    # -- leave / force-leave ---------------------------------------------------------------
    async def op_leave(self) -> dict[str, Any]:
        if not self.s.membership.clustered:
            raise ClusterError("this node is not in a cluster")
        own = self.s.membership.view[self.s.name]
        tombstone = Member(self.s.name, own.incarnation + 1, MemberStatus.LEFT, self.s.role)
        view = self.s.membership.to_wire()
        view[self.s.name] = [tombstone.incarnation, tombstone.status.value, self.s.role]
        links = self.s.up_links()
        for link in links:
            link.send([v1.VIEW, view])
        if links:
            drains = [asyncio.ensure_future(link.drain()) for link in links]
            _, pending = await asyncio.wait(drains, timeout=2.0)
            for task in pending:
                task.cancel()
        self.s.become_standalone(tombstone.incarnation)
        self.s.left_manually = True
        log_event(log, "info", "left the cluster", node=self.s.name)
        return self.op_status()

    def op_force_leave(self, target: str) -> dict[str, Any]:
        if target == self.s.name:
            raise ClusterError("use `cluster leave` to take this node out of its cluster")
        if not self.s.membership.is_member(target):
            raise ClusterError(f"{target} is not a member of this cluster")
        self.s.remove_member(target)
        return self.op_status()

    # -- routes ----------------------------------------------------------------------------
    async def op_routes_verify(self, attempts: int = 5) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for attempt in range(attempts):
            result = await self._verify_once()
            if not result["differences"]:
                break
            await asyncio.sleep(0.3)  # deltas may be in flight: look again before reporting
        return result

    async def _verify_once(self) -> dict[str, Any]:
        status = self.s.membership.status()
        collected: dict[str, dict[str, list[Any]]] = {
            self.s.name: {n: [d.epoch, d.version, d.hash, d.count]
                        for n, d in self.s.routes.digests().items()}}
        unreachable: list[str] = []
        for peer in status.running_nodes:
            if peer == self.s.name:
                continue
            link = self.s.peer_link(peer)
            if link is None or link.closed:
                unreachable.append(peer)
                continue
            try:
                collected[peer] = await link.request("route_digests", {}, timeout=5.0)
            except ClusterError:
                unreachable.append(peer)
        members = set(self.s.membership.members())
        differences: list[str] = []
        checked = sorted(collected)
        for holder in checked:
            copies = collected[holder]
            for origin in checked:
                if origin == holder:
                    continue
                truth, copy = collected[origin].get(origin), copies.get(origin)
                if truth is None:
                    continue
                if copy is None:
                    differences.append(f"{holder} holds no routes of {origin} "
                                       f"({origin} has {truth[3]})")
                elif copy[:3] != truth[:3]:
                    differences.append(
                        f"{holder}'s copy of {origin}'s routes differs: {copy[3]} routes at "
                        f"version {copy[1]}, {origin} has {truth[3]} at version {truth[1]}")
            for origin in sorted(set(copies) - members):
                if copies[origin][3]:
                    differences.append(f"{holder} still holds {copies[origin][3]} routes "
                                       f"of {origin}, which is not a member")
        total = sum(collected[n][n][3] for n in checked if n in collected[n])
        return {"nodes": checked, "not_checked": sorted(set(status.stopped_nodes)
                                                        | set(unreachable)),
                "routes": total, "differences": differences}

    def op_routes_list(self) -> dict[str, Any]:
        """This node's copy of the route table: filter -> nodes, and the down nodes."""
        by_filter: dict[str, list[str]] = {}
        for node in self.s.routes.nodes():
            for topic_filter in self.s.routes.filters_of(node):
                by_filter.setdefault(topic_filter, []).append(node)
        return {"node": self.s.name,
                "routes": {f: sorted(n) for f, n in sorted(by_filter.items())},
                "down": sorted(self.s.routes.down_nodes())}

    def op_route_explain(self, topic: str) -> dict[str, Any]:
        try:
            validate_topic_name(topic)
        except ProtocolError as exc:
            raise ClusterError(f"invalid topic name {topic!r}: {exc}") from None
        filters = self.s.routes.explain(topic)
        local = any(self.s.name in nodes for _, nodes in filters)
        return {
            "topic": topic,
            "node": self.s.name,
            "filters": [[f, nodes] for f, nodes in filters],
            "local": local,
            "forward_to": sorted(self.s.routes.match(topic)),
            "down": sorted({n for _, nodes in filters for n in nodes}
                           & self.s.routes.down_nodes()),
        }


def _str(args: Any, key: str) -> str:
    value = args.get(key) if isinstance(args, dict) else None
    if not isinstance(value, str) or not value:
        raise ClusterError(f"missing argument {key}")
    return value
