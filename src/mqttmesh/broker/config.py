"""BrokerConfig: the plain-value limits one node's broker engine runs with (EMQX defaults)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrokerConfig", "SHARED_STRATEGIES"]

SHARED_STRATEGIES = frozenset(
    {"round_robin", "random", "sticky", "hash_clientid", "hash_topic", "local"}
)


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Every `mqtt.*` limit the broker enforces, as plain values (runtime builds it from Settings).

    Durations are seconds; sizes are bytes. Defaults are EMQX's.

    Attributes:
        node_name: this node's name (``name@host``), stamped on every message as sender_node.
        max_packet_size: largest packet we accept; announced as Maximum Packet Size (v5).
        max_clientid_len: longer client ids are refused (CONNACK 0x85 / 0x02).
        max_topic_levels: topic names / filters with more levels are refused.
        max_qos_allowed: subscriptions are downgraded to it; publishes above it are refused.
        max_topic_alias: Topic Alias Maximum we announce (client -> server aliases).
        retain_available: retained messages supported.
        wildcard_subscription: ``+`` / ``#`` filters allowed.
        shared_subscription: ``$share`` / ``$queue`` filters allowed.
        ignore_loop_deliver: never deliver a message back to the client that sent it.
        keepalive_multiplier: a connection silent for keep_alive x this is closed.
        retry_interval: MQTT 3.x: unacknowledged QoS 1/2 deliveries are resent after this.
        max_awaiting_rel: QoS 2 publishes awaiting PUBREL per session (our Receive Maximum).
        await_rel_timeout: a QoS 2 packet id awaiting PUBREL longer than this is forgotten.
        session_expiry_interval: expiry of MQTT 3.x persistent sessions (clean_session=0).
        max_mqueue_len: queued messages per session (beyond the inflight window).
        mqueue_store_qos0: queue QoS 0 messages for offline / busy sessions.
        max_inflight: unacknowledged QoS 1/2 deliveries per session (v5: also bounded by
            the client's Receive Maximum).
        max_subscriptions: subscriptions per session, None = unlimited.
        upgrade_qos: deliver at max(subscription QoS, message QoS) instead of the minimum
            (EMQX's ``mqtt.upgrade_qos``).
        idle_timeout: a connection that sends no CONNECT within this is closed.
        shared_subscription_strategy: how one member of a shared group is picked.
        server_keepalive: if set, overrides the client's keep alive (v5 Server Keep Alive).
    """

    node_name: str = "mqttmesh@127.0.0.1"
    max_packet_size: int = 1024 * 1024
    max_clientid_len: int = 65535
    max_topic_levels: int = 128
    max_qos_allowed: int = 2
    max_topic_alias: int = 65535
    retain_available: bool = True
    wildcard_subscription: bool = True
    shared_subscription: bool = True
    ignore_loop_deliver: bool = False
    keepalive_multiplier: float = 1.5
    retry_interval: float = 30.0
    max_awaiting_rel: int = 100
    await_rel_timeout: float = 300.0
    session_expiry_interval: float = 7200.0
    max_mqueue_len: int = 1000
    mqueue_store_qos0: bool = True
    max_inflight: int = 32
    max_subscriptions: int | None = None
    upgrade_qos: bool = False
    idle_timeout: float = 15.0
    shared_subscription_strategy: str = "round_robin"
    server_keepalive: int | None = None

    def __post_init__(self) -> None:
        if self.shared_subscription_strategy not in SHARED_STRATEGIES:
            raise ValueError(
                f"unknown shared_subscription_strategy {self.shared_subscription_strategy!r}"
            )
        if not 0 <= self.max_qos_allowed <= 2:
            raise ValueError("max_qos_allowed must be 0, 1 or 2")
