"""Cluster links of a ClusterService: connectors, accepting, peer bookkeeping, liveness.

Theory of operation
-------------------
Part of ``ClusterService`` (a mixin: the methods take the service as ``self``). A core keeps
one outgoing distribution link (``_dist_connector``, exponential backoff 0.1 s .. 2 s, bound
to our host) and one outgoing RPC link (``cluster_forwarder``) to every other core; it
accepts links from cores, replicants (their uplinks) and ctl. A member is *running* while
our outgoing link to it is up (fixed-timeout heartbeat failure detector, ``peer_link``).
``peer_link(name)`` / ``up_links()`` give the features a link to any running member: direct,
or relayed through the cores (``cluster_relay``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mqttmesh.cluster import KIND_CTL, KIND_NODE, ClientHandshake, ServerHandshake, v1
from mqttmesh.errors import HandshakeError
from mqttmesh.logs import log_event
from mqttmesh.runtime.cluster_base import ClusterState
from mqttmesh.runtime.peer_link import LinkUnreachable, PeerLink



__all__ = ["ClusterLinks", "Peer"]

log = logging.getLogger("mqttmesh.cluster")

REFUSAL_LOG_INTERVAL = 60.0


class Peer:
    __slots__ = ("name", "link", "tasks")

    def __init__(self, name: str) -> None:
        self.name = name
        self.link: PeerLink | None = None
        self.tasks: list[asyncio.Task[None]] = []


class ClusterLinks(ClusterState):
    """Links and liveness (mixed into ``ClusterService``)."""

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
        peer = self._peers[name] = Peer(name)
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

    async def _dist_connector(self, peer: Peer) -> None:
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


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text.removeprefix("refused by peer: ")


def _address(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return "?"

