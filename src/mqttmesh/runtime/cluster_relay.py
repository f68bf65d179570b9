"""Relayed links: how two nodes without a socket between them talk (core/replicant clusters).

Theory of operation
-------------------
Cores keep a full mesh; a replicant keeps one uplink (a distribution and an RPC link) to one
core and nothing else (``docs/scaling.md``). Everything a feature sends "to node N" goes
through ``Relay.link_to(N)``: the direct link when there is one, else a ``RelayLink`` that
wraps each message in ``RELAY [src, dst, message]`` (wire v2) and hands it to the next hop:

* on a replicant: its core, whatever the destination;
* on a core: the destination itself (a core, or a replicant attached here), else the core
  the destination replicant is attached to (``cluster.Topology``).

So a message crosses at most three links (replicant -> core -> core -> replicant). A core
relays from a replicant to anywhere, but from another core only to its own replicants, so
a relayed message can never loop. A ``RelayLink`` has the ``PeerLink`` surface the
features use (``peer``, ``send``, ``flush``, ``drain``, ``request``, ``closed``): session
takeover, shared subscriptions, retained messages, operator requests and route acks work
unchanged between any two nodes. On the RPC port the same envelope carries ``FORWARD`` and
its end-to-end ``FORWARD_ACK``: relays keep nothing, the sender's outbox retries.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import KIND_NODE, PeerInfo, v1, v2
from mqttmesh.runtime.peer_link import Requester

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService
    from mqttmesh.runtime.peer_link import PeerLink

__all__ = ["Relay", "RelayLink"]

Handler = Callable[[Any, list[Any]], Awaitable[None] | None]


class RelayLink(Requester):
    """A link to ``name`` through the next hop (see module docstring)."""

    def __init__(self, relay: Relay, name: str, rpc: bool) -> None:
        s = relay.s
        self._relay = relay
        self._rpc = rpc
        self.peer = PeerInfo(KIND_NODE, name, s.cluster_name, s.membership.role_of(name),
                             v2.VERSION)
        self.outgoing = True
        self.address = f"relayed:{name}"
        self.close_reason = ""
        self.fair = False
        self._requests: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)

    @property
    def closed(self) -> bool:
        return self._relay.next_hop(self.peer.name, self._rpc) is None

    def send(self, msg: list[Any]) -> None:
        hop = self._relay.next_hop(self.peer.name, self._rpc)
        if hop is not None:
            hop.send([v2.RELAY, self._relay.s.name, self.peer.name, msg])

    def flush(self) -> None:
        hop = self._relay.next_hop(self.peer.name, self._rpc)
        if hop is not None:
            hop.flush()

    async def drain(self) -> None:
        hop = self._relay.next_hop(self.peer.name, self._rpc)
        if hop is not None:
            await hop.drain()

    def close(self, reason: str = "closed") -> None:
        """Nothing to close: fail the requests waiting on this path."""
        for fut in self._requests.values():
            if not fut.done():
                fut.set_result((False, f"relay to {self.peer.name} closed: {reason}"))


class Relay:
    """Next hops and relayed links of one ClusterService."""

    def __init__(self, service: ClusterService) -> None:
        self.s = service
        self._links: dict[tuple[str, bool], RelayLink] = {}
        self.relayed = 0  # messages passed on for other nodes

    def direct(self, name: str, rpc: bool = False) -> PeerLink | None:
        """A socket link to ``name`` that is up: ours to a core, a replicant's uplink to us,
        or (on a replicant) the uplink to our core."""
        s = self.s
        link = s.forwarder.links.get(name) if rpc else s.direct_link(name)
        if link is None or link.closed:
            links = s.replicants.rpc_links if rpc else s.replicants.links
            link = links.get(name)
        return link if link is not None and not link.closed else None

    def next_hop(self, dst: str, rpc: bool = False) -> PeerLink | None:
        s = self.s
        if dst == s.name:
            return None
        if s.uplink is not None:  # a replicant: everything goes to its core
            return s.uplink.link_for(rpc)
        link = self.direct(dst, rpc)
        if link is not None:
            return link
        core = s.topology.core_of(dst)
        if core is None or core == s.name:
            return None
        return self.direct(core, rpc)

    def link_to(self, name: str, rpc: bool = False) -> PeerLink | RelayLink | None:
        """The link to use for ``name``: direct if any, else relayed; None if unreachable."""
        link = self.direct(name, rpc)
        if link is not None:
            return link
        if self.next_hop(name, rpc) is None:
            return None
        return self.relayed_link(name, rpc)

    def relayed_link(self, name: str, rpc: bool) -> RelayLink:
        key = (name, rpc)
        link = self._links.get(key)
        if link is None:
            if len(self._links) > 4096:  # forget idle ones (no request waiting on them)
                for k in [k for k, v in self._links.items() if not v._requests]:
                    del self._links[k]
            link = self._links[key] = RelayLink(self, name, rpc)
        return link

    def forget(self, name: str) -> None:
        for rpc in (False, True):
            link = self._links.pop((name, rpc), None)
            if link is not None:
                link.close("node left")

    def _src_ok(self, sender: str, src: str) -> bool:
        """Whether ``sender`` (the link's authenticated peer) may hand us a RELAY from
        ``src``: its own; on a core, from another core, those of a replicant attached to
        that core; on a replicant, anything from its core (the upstream of everything)."""
        s = self.s
        if src == sender:
            return True
        if s.uplink is not None:
            return sender == s.uplink.core
        return (s.membership.role_of(sender) == "core"
                and s.topology.core_of(src) == sender)

    def on_relay(self, link: Any, msg: list[Any], handler: Handler, rpc: bool
                 ) -> Awaitable[None] | None:
        """A ``RELAY`` arrived on ``link``: pass it on, or unwrap it for ``handler``."""
        _, src, dst, inner = msg
        s = self.s
        if not self._src_ok(link.peer.name, src):
            return None  # a node may only relay its own messages or its replicants'
        if dst != s.name:
            if s.uplink is not None:
                return None  # replicants relay nothing
            if s.membership.role_of(link.peer.name) == "core" \
                    and dst not in s.replicants.links:
                return None  # from a core: only to our own replicants (no loops)
            hop = self.next_hop(dst, rpc)
            if hop is not None and hop is not link:
                hop.send(msg)
                self.relayed += 1
            return None
        if src == s.name or not s.membership.is_member(src):
            return None
        virtual = self.relayed_link(src, rpc)
        if inner[0] == v1.REPLY:
            virtual.complete(inner)
            return None
        return handler(virtual, inner)
