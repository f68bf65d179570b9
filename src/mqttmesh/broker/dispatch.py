"""Dispatcher: the local subscription table (filter -> sessions) and local fan-out.

This is the hot path of the broker (STYLE rule 16). `dispatch` matches a topic once in the
TopicTrie, then for each matching subscription computes the delivered QoS and RETAIN flag
and either writes the message's cached QoS 0 bytes straight to the subscriber's outlet or
hands it to `Session.deliver` (QoS 1/2, subscription identifiers, offline sessions).
Routes are keyed by the *real* filter, so `$share/g/a/b` and `a/b` share the route `a/b`,
which is what the cluster is told about (`route_added` / `route_removed`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Protocol

from mqttmesh.broker.config import BrokerConfig
from mqttmesh.broker.message import Message
from mqttmesh.broker.session import Subscription
from mqttmesh.broker.shared import SharedGroup
from mqttmesh.broker.stats import Counters
from mqttmesh.broker.trie import TopicTrie

__all__ = ["ClusterHooks", "Dispatcher", "Route"]


class ClusterHooks(Protocol):
    """What the broker tells the cluster layer (None when the node runs standalone)."""

    def route_added(self, topic_filter: str) -> None:
        """The first local subscription to this real filter appeared."""

    def route_removed(self, topic_filter: str) -> None:
        """The last local subscription to this real filter is gone."""

    def forward(self, message: Message) -> None:
        """A message published on this node: forward it to every other node with a route."""

    # Optional (looked up with getattr, so a ClusterHooks may leave them out):
    #
    # def shared_added(self, group: str, real_filter: str) -> None:
    # def shared_removed(self, group: str, real_filter: str) -> None:
    #     """The first local member of a shared group appeared / the last one left. A
    #     cluster that implements these picks shared-group members cluster-wide: the broker
    #     then leaves shared groups out of `publish` and `dispatch_remote`, and the cluster
    #     calls `broker.dispatch_shared(message, group, real_filter, now)` on the node it
    #     picked for each matching group (the publishing node included)."""
    #
    # def session_connecting(self, client_id: str, clean_start: bool) -> bool:
    #     """A CONNECT for this client id was accepted here. Return True if its session is
    #     held by another node and will be fetched: the CONNECT then waits until
    #     `broker.import_session(state, now)` or `broker.session_unavailable(client_id, now)`
    #     (or 5 s). With clean start the cluster discards any remote session itself
    #     (`discard_session` there) and returns False."""


class Route:
    """The local subscriptions of one real filter."""

    __slots__ = ("topic_filter", "subs", "shared")

    def __init__(self, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        self.subs: dict[str, Subscription] = {}  # client id -> subscription
        self.shared: dict[str, SharedGroup] | None = None

    def __bool__(self) -> bool:
        return bool(self.subs) or bool(self.shared)


class Dispatcher:
    """Subscription table and local fan-out for one node."""

    __slots__ = ("_config", "_counters", "_cluster", "_random", "trie", "subscriptions",
                 "shared_subscriptions", "_shared_added", "_shared_removed", "cluster_shares")

    def __init__(
        self, config: BrokerConfig, counters: Counters, cluster: ClusterHooks | None,
        rng: random.Random,
    ) -> None:
        self._config = config
        self._counters = counters
        self._cluster = cluster
        self._shared_added = getattr(cluster, "shared_added", None)
        self._shared_removed = getattr(cluster, "shared_removed", None)
        self.cluster_shares = self._shared_added is not None
        """True when the cluster picks shared-group members cluster-wide (see ClusterHooks)."""
        self._random = rng
        self.trie: TopicTrie[Route] = TopicTrie()
        self.subscriptions = 0
        self.shared_subscriptions = 0

    def filters(self) -> Iterator[str]:
        """Real filters with at least one local subscription."""
        return iter(list(self.trie))

    def add(self, sub: Subscription) -> None:
        """Add (or replace) a session's subscription to its filter."""
        route = self.trie.get(sub.real_filter)
        if route is None:
            route = Route(sub.real_filter)
            self.trie.insert(sub.real_filter, route)
            if self._cluster is not None:
                self._cluster.route_added(sub.real_filter)
        client_id = sub.session.client_id
        if sub.group is None:
            if client_id not in route.subs:
                self.subscriptions += 1
            route.subs[client_id] = sub
            return
        if route.shared is None:
            route.shared = {}
        group = route.shared.get(sub.group)
        if group is None:
            group = route.shared[sub.group] = SharedGroup(
                sub.group, self._config.shared_subscription_strategy, self._random
            )
            if self._shared_added is not None:
                self._shared_added(sub.group, sub.real_filter)
        if client_id not in group.members:
            self.subscriptions += 1
            self.shared_subscriptions += 1
        group.add(sub)

    def remove(self, sub: Subscription) -> None:
        """Remove a session's subscription; tells the cluster when the route empties."""
        route = self.trie.get(sub.real_filter)
        if route is None:
            return
        client_id = sub.session.client_id
        if sub.group is None:
            if route.subs.get(client_id) is sub:
                del route.subs[client_id]
                self.subscriptions -= 1
        elif route.shared is not None:
            group = route.shared.get(sub.group)
            if group is not None and group.members.get(client_id) is sub:
                group.remove(client_id)
                self.subscriptions -= 1
                self.shared_subscriptions -= 1
                if not group.members:
                    del route.shared[sub.group]
                    if self._shared_removed is not None:
                        self._shared_removed(sub.group, sub.real_filter)
                    if not route.shared:
                        route.shared = None
        if not route:
            self.trie.remove(sub.real_filter)
            if self._cluster is not None:
                self._cluster.route_removed(sub.real_filter)

    def dispatch_shared(self, message: Message, group: str, real_filter: str, now: float) -> bool:
        """Deliver a message to one local member of a shared group; False if it has none."""
        route = self.trie.get(real_filter)
        shared = route.shared if route is not None else None
        members = shared.get(group) if shared is not None else None
        sub = members.pick(message) if members is not None else None
        if sub is None or message.expired(now):
            return False
        mqos = message.qos
        upgrade = self._config.upgrade_qos
        qos = sub.qos if (sub.qos > mqos if upgrade else sub.qos < mqos) else mqos
        sub.session.deliver(message, qos, message.retain and sub.retain_as_published,
                            sub.identifier, now)
        return True

    def dispatch(self, message: Message, now: float, shared: bool = True) -> int:
        """Deliver a message to every matching local subscription; returns how many.

        With `shared` False, shared groups are left out (the cluster picks their members).
        """
        routes = self.trie.match(message.topic)
        if not routes:
            return 0
        if message.expiry_at is not None and now >= message.expiry_at:
            self._counters.messages_dropped += 1
            return 0
        sender = message.sender
        mqos = message.qos
        mretain = message.retain
        upgrade = self._config.upgrade_qos
        delivered = sent = nbytes = 0
        for route in routes:
            for sub in route.subs.values():
                session = sub.session
                if sub.no_local and session.client_id == sender:  # [MQTT-3.8.3-3]
                    continue
                qos = sub.qos if (sub.qos > mqos if upgrade else sub.qos < mqos) else mqos
                retain = mretain and sub.retain_as_published  # [MQTT-3.3.1-12] [MQTT-3.3.1-13]
                outlet = session.outlet
                delivered += 1
                if qos == 0 and outlet is not None and sub.identifier is None:
                    # fast path: one encode per (version, retain), same bytes for everyone
                    data = message.encode_qos0(session.version, retain, now)
                    if len(data) <= session.their_max_packet_size:  # [MQTT-3.1.2-25]
                        outlet.write(data)
                        sent += 1
                        nbytes += len(data)
                    else:
                        self._counters.messages_dropped += 1
                else:
                    session.deliver(message, qos, retain, sub.identifier, now)
            if shared and route.shared is not None:
                for group in route.shared.values():
                    sub = group.pick(message)  # type: ignore[assignment]
                    if sub is None:
                        continue
                    qos = sub.qos if (sub.qos > mqos if upgrade else sub.qos < mqos) else mqos
                    retain = mretain and sub.retain_as_published
                    delivered += 1
                    sub.session.deliver(message, qos, retain, sub.identifier, now)
        counters = self._counters
        counters.messages_sent += sent
        counters.sent_qos[0] += sent  # the fast path above sends QoS 0 only
        counters.bytes_sent += nbytes
        return delivered
