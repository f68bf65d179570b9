"""What a CONNECT sets up: the session's negotiated limits and the CONNACK we answer with."""

from __future__ import annotations

from mqttmesh.broker.config import BrokerConfig
from mqttmesh.broker.session import Session
from mqttmesh.protocol import encode
from mqttmesh.protocol.packets import ConnAck, Connect
from mqttmesh.protocol.properties import Properties

__all__ = ["NEVER_EXPIRES", "apply_connect_limits", "connack"]

NEVER_EXPIRES = 0xFFFFFFFF
"""Session Expiry Interval meaning "never" (§3.1.2.11.2)."""


def apply_connect_limits(session: Session, connect: Connect, config: BrokerConfig) -> None:
    """Session expiry, inflight window and the client's Maximum Packet Size from a CONNECT.

    MQTT 3.x: clean session = expiry 0, otherwise `session_expiry_interval` (as EMQX).
    MQTT 5: the Session Expiry Interval property (absent = 0) [MQTT-3.1.2-23]; the window
    is the client's Receive Maximum capped by `max_inflight` [MQTT-3.3.4-9].
    """
    props = connect.properties
    if connect.protocol_version == 5:
        expiry = props.session_expiry_interval or 0
        session.expiry_interval = float("inf") if expiry == NEVER_EXPIRES else expiry
        session.inflight_max = min(config.max_inflight, props.receive_maximum or 65535)
        session.their_max_packet_size = props.maximum_packet_size or (1 << 62)
    else:
        session.expiry_interval = 0 if connect.clean_start else config.session_expiry_interval
        session.inflight_max = config.max_inflight
        session.their_max_packet_size = 1 << 62


def connack(config: BrokerConfig, version: int, present: bool, assigned: str | None) -> bytes:
    """The successful CONNACK; MQTT 5 announces our limits and features (§3.2.2.3)."""
    if version < 5:
        return bytes((0x20, 2, 1 if present else 0, 0))  # [MQTT-3.2.2-2]
    props = Properties(
        receive_maximum=min(max(config.max_awaiting_rel, 1), 65535),
        maximum_qos=config.max_qos_allowed if config.max_qos_allowed < 2 else None,
        retain_available=int(config.retain_available),
        maximum_packet_size=config.max_packet_size,
        assigned_client_identifier=assigned,  # [MQTT-3.2.2-16]
        topic_alias_maximum=config.max_topic_alias,
        wildcard_subscription_available=int(config.wildcard_subscription),
        subscription_identifier_available=1,
        shared_subscription_available=int(config.shared_subscription),
        server_keep_alive=config.server_keepalive,
    )
    return encode(ConnAck(present, 0, props), 5)
