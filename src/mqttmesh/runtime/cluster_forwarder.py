"""Forwarding on the RPC port (5370 + offset): outboxes to peers, dispatch of what peers send.

Theory of operation
-------------------
``ClusterForwarder.forward(message)`` (the broker's hook, synchronous) matches the topic in the
replicated route table, encodes the message once and adds it to the ``Outbox`` of every
destination node; the first call in a loop iteration schedules one flush, which turns each
outbox's new messages into at most two FORWARD messages on that node's RPC link (the link
writes them as one frame). One connector task per peer keeps an outgoing RPC link (bound to
our host, authenticated with the cookie) and resends unacknowledged QoS 1/2 batches after
each reconnect. Incoming RPC links dispatch through ``broker.dispatch_remote`` and acknowledge
reliable batches; the ``Inbox`` drops retries already dispatched. See ``cluster.forwarding``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import KIND_NODE, ClientHandshake, v1, v2
from mqttmesh.cluster.forwarding import Inbox, Outbox, decode_message, encode_message
from mqttmesh.config import node_host, rpc_port
from mqttmesh.errors import HandshakeError
from mqttmesh.logs import log_event
from mqttmesh.runtime.peer_link import LinkUnreachable, PeerLink

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService

__all__ = ["ClusterForwarder"]

log = logging.getLogger("mqttmesh.cluster.forward")


class ClusterForwarder:
    """The RPC side of a ClusterService."""

    def __init__(self, service: ClusterService) -> None:
        self.service = service
        self.outboxes: dict[str, Outbox] = {}
        self.links: dict[str, PeerLink] = {}       # outgoing RPC link per peer
        self.inbox = Inbox()
        self._scheduled = False
        self.forwarded = 0
        self.received = 0
        self._boxes_made = 0
        self._stalled: dict[str, tuple[str, int]] = {}
        self.retries = 0

    # -- sending ---------------------------------------------------------------------------
    def forward(self, message: Any) -> None:
        service = self.service
        nodes = service.routes.match(message.topic)
        if not nodes:
            return
        loop = service.loop
        if loop is None:
            return
        encoded = encode_message(message, loop.time())
        qos = message.qos
        for node in nodes:
            box = self.outboxes.get(node)
            if box is None:
                # a new stream id per outbox: after drop_peer (leave, autoclean) and a
                # re-admission, seqs restart at 1 and the receiver's high-water mark of
                # the old stream must not swallow them as duplicates
                self._boxes_made += 1
                box = self.outboxes[node] = Outbox(f"{service.epoch}.{self._boxes_made}")
            box.add(encoded, qos)
        self.forwarded += 1
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        relay = self.service.relay
        for node, box in self.outboxes.items():
            if not box.has_new:
                continue
            link = relay.link_to(node, rpc=True)  # direct, or through the cores
            connected = link is not None and not link.closed
            dropped = box.dropped
            for msg in box.take(connected):
                assert link is not None
                link.send(msg)
            if box.dropped != dropped:
                log_event(log, "warning", "forwarding queue of an unreachable node is full: "
                          "messages dropped", peer=node, dropped=box.dropped - dropped)

    def link_up(self, node: str) -> None:
        """An RPC link to ``node`` came up: resend what waits for acks to every destination
        reached through it (relayed destinations have no connector of their own)."""
        relay = self.service.relay
        for dest, box in self.outboxes.items():
            if dest == node or relay.direct(dest, True) is None:
                link = relay.link_to(dest, rpc=True)
                if link is not None:
                    for msg in box.resend():
                        link.send(msg)
        self.flush()

    def retry_relayed(self) -> None:
        """Every gossip round: resend what a relayed destination has not acknowledged since
        the last round (a relay hop may have closed with batches on it; the receiver
        dispatches only in order and drops what it already has)."""
        relay = self.service.relay
        for dest, box in self.outboxes.items():
            head = box.head
            if head is None:
                self._stalled.pop(dest, None)
                continue
            if relay.direct(dest, True) is not None:
                continue  # a TCP link of our own: in order, resent on reconnect
            if self._stalled.get(dest) == (box.stream, head):
                link = relay.link_to(dest, rpc=True)
                if link is not None:
                    self.retries += 1
                    for msg in box.resend():
                        link.send(msg)
            self._stalled[dest] = (box.stream, head)

    def drop_link(self, node: str) -> None:
        """Close our RPC link to ``node`` (the outbox stays for a retry elsewhere)."""
        link = self.links.pop(node, None)
        if link is not None:
            link.close("uplink lost")

    def drop_peer(self, node: str) -> None:
        """``node`` left: forget what was still to be sent to it."""
        self._stalled.pop(node, None)
        box = self.outboxes.pop(node, None)
        if box is not None and box.unacked:
            log_event(log, "warning", "messages to a node that left are dropped",
                      peer=node, messages=box.unacked)
        link = self.links.pop(node, None)
        if link is not None:
            link.close("node left")

    async def connector(self, node: str) -> None:
        """Keep an outgoing RPC link to ``node`` while it is a member."""
        service = self.service
        backoff = 0.1
        host, port = node_host(node), rpc_port(node)
        while service.running and service.membership.is_member(node):
            hs = ClientHandshake(service.cookie, KIND_NODE, service.name, service.cluster_name,
                                 service.role)
            try:
                link = await service.transport.open_link(node, "rpc", hs, service.host)
            except (LinkUnreachable, HandshakeError) as exc:
                if isinstance(exc, HandshakeError):
                    log_event(log, "warning", "rpc link refused", peer=node,
                              address=f"{host}:{port}", reason=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            except Exception:  # a bug here must cost one retry, not the cluster service
                log.exception("opening an rpc link failed", extra={"kv": {"peer": node}})
                await asyncio.sleep(2.0)
                continue
            if link.peer.name != node:
                link.close("wrong node")
                await asyncio.sleep(2.0)
                continue
            backoff = 0.1
            self.links[node] = link
            service.track(link)
            link.fair = True
            self.link_up(node)
            try:
                await link.run(self.on_incoming)
            finally:
                service.untrack(link)
                if self.links.get(node) is link:
                    del self.links[node]

    # -- receiving -------------------------------------------------------------------------
    def on_incoming(self, link: Any, msg: list[Any]) -> None:
        """A message on an RPC link (either direction: a core forwards to its replicants
        on their uplinks), or unwrapped from a relay."""
        kind = msg[0]
        if kind == v1.FORWARD_ACK:  # from a v1 peer: on the link the batch went out on
            box = self.outboxes.get(link.peer.name)
            if box is not None:
                box.ack(msg[1])
            return
        if kind == v2.FORWARD_ACK2:
            box = self.outboxes.get(link.peer.name)
            if box is not None:
                box.ack(msg[2], msg[1])
            return
        if kind == v2.RELAY:
            self.service.relay.on_relay(link, msg, self.on_incoming, rpc=True)
            return
        if kind != v1.FORWARD:
            return
        service = self.service
        sender = link.peer.name
        if not service.membership.is_member(sender):
            return  # not (or no longer) in our cluster: no ack either
        _, stream, seq, batch = msg
        if self.inbox.accept(sender, stream, seq):
            broker = service.broker
            now = asyncio.get_running_loop().time()
            for fields in batch:
                try:
                    message = decode_message(fields, now)
                except (ValueError, TypeError):
                    log_event(log, "warning", "malformed forwarded message dropped",
                              peer=sender)
                    continue
                self.received += 1
                if broker is not None:
                    try:
                        broker.dispatch_remote(message, now)
                        if service.sessions.handoffs:
                            service.sessions.on_message(message, False)
                    except Exception:
                        log.exception("dispatch of a forwarded message failed")
        if seq:
            mark = self.inbox.mark(sender, stream)
            if mark:
                link.send([v2.FORWARD_ACK2, stream, mark] if link.peer.version >= v2.VERSION
                          else [v1.FORWARD_ACK, mark])
