"""Shared subscriptions across the cluster (runtime side of ``cluster.shared``).

The broker's ``shared_added`` / ``shared_removed`` (first local member of a group / last
one gone) change this node's set of groups, which is shipped whole (``shared.set``, with
``(epoch, version)``) to every member after each change (batched per loop iteration) and on
every link start. For each publish accepted here (the ``forward`` hook) every matching group
gets ONE node (``SharedTable.picks``): this node delivers with ``broker.dispatch_shared``, a
peer gets ``shared.deliver`` on our distribution link and does the same. Messages forwarded
to us by peers never go to shared groups (the publishing node picked already).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import v1
from mqttmesh.cluster.forwarding import decode_message, encode_message
from mqttmesh.cluster.shared import SharedTable
from mqttmesh.cluster.wire import shared_ops as ops

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService
    from mqttmesh.runtime.peer_link import PeerLink

__all__ = ["ClusterShared"]

log = logging.getLogger("mqttmesh.cluster.shared")


class ClusterShared:
    def __init__(self, service: ClusterService) -> None:
        self.s = service
        strategy = getattr(getattr(service.settings, "mqtt", None),
                           "shared_subscription_strategy", "round_robin")
        self.table = SharedTable(service.name, strategy)
        self.own: set[tuple[str, str]] = set()
        self.version = 0
        self._scheduled = False
        self.delivered_remote = 0
        self.redispatched = 0

    # -- broker hooks ------------------------------------------------------------------------
    def added(self, group: str, real_filter: str) -> None:
        self.own.add((group, real_filter))
        self._changed()

    def removed(self, group: str, real_filter: str) -> None:
        self.own.discard((group, real_filter))
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.table.set_node(self.s.name, self.own)
        loop = self.s.loop
        if loop is not None and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._broadcast)

    def _msg(self) -> list[Any]:
        return [v1.REQUEST, ops.ONE_WAY, ops.SET, {
            "epoch": self.s.epoch, "v": self.version,
            "groups": [[g, f] for g, f in sorted(self.own)]}]

    def _broadcast(self) -> None:
        self._scheduled = False
        msg = self._msg()
        for link in self.s.up_links():
            link.send(msg)

    def on_link_up(self, link: PeerLink) -> None:
        link.send(self._msg())

    def listing(self) -> dict[str, list[str]]:
        """``"$share/GROUP/FILTER" -> [nodes]`` as replicated here."""
        out: dict[str, list[str]] = {}
        for node in self.table.nodes():
            for group, flt in self.table.groups_of(node):
                out.setdefault(f"$share/{group}/{flt}", []).append(node)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def node_gone(self, name: str) -> None:
        self.table.drop_node(name)

    # -- publishing --------------------------------------------------------------------------
    def route(self, message: Any) -> None:
        """A publish accepted here: one node per matching shared group delivers it."""
        if not self.table:
            return
        s = self.s
        if message.topic.startswith("$SYS/") or s.loop is None:
            return
        up = {p for p in s.membership.peers() if s.peer_link(p) is not None}
        now = s.loop.time()
        encoded = None
        for group, flt, node in self.table.picks(message.topic, message.sender, up):
            if node == s.name:
                if s.broker is not None:
                    s.broker.dispatch_shared(message, group, flt, now)
                continue
            link = s.peer_link(node)
            if link is None:
                continue
            if encoded is None:
                encoded = encode_message(message, now)
            link.send([v1.REQUEST, ops.ONE_WAY, ops.DELIVER,
                       {"group": group, "filter": flt, "m": encoded}])

    def redispatch(self, message: Any, group: str, real_filter: str) -> None:
        """A member's session ended with this message unacknowledged: another member."""
        s = self.s
        if s.loop is None:
            return
        up = {p for p in s.membership.peers() if s.peer_link(p) is not None}
        node = self.table.pick_group(group, real_filter, message.topic, message.sender, up)
        self.redispatched += 1
        self._send(message, group, real_filter, node)

    def _send(self, message: Any, group: str, flt: str, node: str | None) -> None:
        s = self.s
        if node is None or s.loop is None:
            return
        if node == s.name:
            if s.broker is not None:
                s.broker.dispatch_shared(message, group, flt, s.loop.time())
            return
        link = s.peer_link(node)
        if link is not None:
            link.send([v1.REQUEST, ops.ONE_WAY, ops.DELIVER, {
                "group": group, "filter": flt, "m": encode_message(message, s.loop.time())}])

    def on_request(self, link: PeerLink, rid: int, op: str, args: Any) -> None:
        s = self.s
        sender = link.peer.name
        if not isinstance(args, dict) or not s.membership.is_member(sender):
            return
        if op == ops.SET:
            groups = args.get("groups")
            epoch, version = args.get("epoch"), args.get("v")
            if not isinstance(groups, list) or not isinstance(epoch, str) \
                    or not isinstance(version, int):
                return
            pairs = [(g, f) for g, f in (x for x in groups if isinstance(x, list)
                                         and len(x) == 2)
                     if isinstance(g, str) and isinstance(f, str)]
            self.table.set_node(sender, pairs, (epoch, version))
        elif op == ops.DELIVER:
            group, flt = args.get("group"), args.get("filter")
            if not isinstance(group, str) or not isinstance(flt, str) or s.broker is None \
                    or s.loop is None:
                return
            try:
                message = decode_message(args.get("m"), s.loop.time())
            except (ValueError, TypeError):
                return
            self.delivered_remote += 1
            s.broker.dispatch_shared(message, group, flt, s.loop.time())
        elif rid:
            link.send([v1.REPLY, rid, False, f"unknown operation {op[:40]!r}"])
