"""Broker counters (mutable, bumped on the hot path) and BrokerStats (their frozen snapshot)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrokerStats", "Counters"]


class Counters:
    """Running totals; plain int attributes so the hot path pays one add each."""

    __slots__ = (
        "messages_received", "messages_sent", "messages_dropped", "bytes_received",
        "bytes_sent", "messages_forwarded", "messages_from_peers", "received_qos", "sent_qos",
    )

    def __init__(self) -> None:
        self.messages_received = 0
        self.messages_sent = 0
        self.messages_dropped = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.messages_forwarded = 0
        self.messages_from_peers = 0
        # per-QoS splits of messages_received / messages_sent, indexed by QoS (0, 1, 2):
        # bumped next to the totals, one list index each
        self.received_qos = [0, 0, 0]
        self.sent_qos = [0, 0, 0]


@dataclass(frozen=True, slots=True)
class BrokerStats:
    """A snapshot of one node's broker, published under ``$SYS/brokers/<node>/...``.

    Attributes:
        connections: connected clients (CONNACK sent, not yet closed).
        channels: open network connections, including those still before CONNECT.
        sessions: sessions held, connected or not.
        subscriptions: subscriptions of all sessions (shared ones included).
        shared_subscriptions: the shared ones among them.
        routes: distinct real filters with a local subscriber (what the cluster is told).
        retained: retained messages stored.
        messages_received: PUBLISH packets accepted from clients.
        messages_sent: PUBLISH packets written to clients.
        messages_dropped: messages discarded (queue full, expired, too large for the client,
            QoS 0 not queued, no subscriber on a standalone node).
        messages_received_qos / messages_sent_qos: the same two counts split by QoS, as
            ``(qos0, qos1, qos2)``; received is the QoS of the PUBLISH from the client, sent
            the QoS it was delivered with (redeliveries with DUP=1 count again, as in the total).
        messages_forwarded: messages handed to the cluster.
        messages_from_peers: messages dispatched on behalf of another node.
        bytes_received / bytes_sent: MQTT bytes read / written (PUBLISH and control packets).
    """

    connections: int
    channels: int
    sessions: int
    subscriptions: int
    shared_subscriptions: int
    routes: int
    retained: int
    messages_received: int
    messages_sent: int
    messages_dropped: int
    messages_forwarded: int
    messages_from_peers: int
    bytes_received: int
    bytes_sent: int
    messages_received_qos: tuple[int, int, int] = (0, 0, 0)
    messages_sent_qos: tuple[int, int, int] = (0, 0, 0)
