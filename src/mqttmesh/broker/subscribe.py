"""SUBSCRIBE / UNSUBSCRIBE: per-filter validation, granted QoS, retained messages on subscribe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqttmesh import access
from mqttmesh.broker.session import Session, Subscription
from mqttmesh.broker.trie import is_wildcard
from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol import parse_share, validate_topic_filter
from mqttmesh.protocol import packets

if TYPE_CHECKING:
    from mqttmesh.broker.broker import Broker

__all__ = ["subscribe", "send_retained", "unsubscribe"]

TOPIC_FILTER_INVALID = 0x8F
SHARED_NOT_SUPPORTED = 0x9E
WILDCARD_NOT_SUPPORTED = 0xA2
QUOTA_EXCEEDED = 0x97
NO_SUBSCRIPTION_EXISTED = 0x11
NOT_AUTHORIZED = 0x87
V3_FAILURE = 0x80


def subscribe(
    broker: Broker, session: Session, packet: packets.Subscribe, version: int,
    client: access.ClientInfo | None = None, cache: access.AuthzCache | None = None,
) -> tuple[list[int], list[tuple[Subscription, bool]]] | None:
    """Apply a SUBSCRIBE: the SUBACK reason codes, and each accepted subscription with
    whether it is new (for Retain Handling 1). None: a filter was not authorized and the
    authorizer's deny_action is disconnect (nothing was applied)."""
    props = packet.properties
    sub_id = props.subscription_identifiers[0] if props.subscription_identifiers else None
    checked = [_check(broker, request) for request in packet.subscriptions]
    authz = broker.authorizer
    if authz is not None and client is not None:
        for i, (code, group, real) in enumerate(checked):
            request = packet.subscriptions[i]
            if code is None and not authz.authorize(
                client, access.Action.SUBSCRIBE, request.topic_filter, request.qos,
                cache=cache,
            ):
                if authz.deny_action is access.DenyAction.DISCONNECT:
                    return None
                checked[i] = (NOT_AUTHORIZED, group, real)
    codes: list[int] = []
    accepted: list[tuple[Subscription, bool]] = []
    for request, (code, group, real) in zip(packet.subscriptions, checked):
        sub = None
        new = False
        if code is None:
            code, sub, new = _subscribe_one(broker, session, request, group, real, sub_id)
        if sub is not None:
            accepted.append((sub, new))
        codes.append(V3_FAILURE if (code >= 0x80 and version < 5) else code)
    return codes, accepted


def _check(broker: Broker, request: packets.Subscription) -> tuple[int | None, str | None, str]:
    """Validate one filter: (failure code or None, share group, real filter)."""
    config = broker.config
    topic_filter = request.topic_filter
    try:
        group, real = parse_share(topic_filter)
        validate_topic_filter(real, config.max_topic_levels)
    except RemoteProtocolError:
        return TOPIC_FILTER_INVALID, None, topic_filter  # [MQTT-3.8.3-2] refused in SUBACK
    if group is not None:
        if not config.shared_subscription:
            return SHARED_NOT_SUPPORTED, group, real
        if request.no_local:
            raise RemoteProtocolError("No Local on a shared subscription", 0x82)  # [MQTT-3.8.3-4]
    if not config.wildcard_subscription and is_wildcard(real):
        return WILDCARD_NOT_SUPPORTED, group, real
    return None, group, real


def _subscribe_one(
    broker: Broker, session: Session, request: packets.Subscription, group: str | None,
    real: str, sub_id: int | None,
) -> tuple[int, Subscription | None, bool]:
    config = broker.config
    topic_filter = request.topic_filter
    subs = session.subscriptions
    if subs is None:
        subs = session.subscriptions = {}
    existing = subs.get(topic_filter)
    if (
        existing is None
        and config.max_subscriptions is not None
        and len(subs) >= config.max_subscriptions
    ):
        return QUOTA_EXCEEDED, None, False
    qos = min(request.qos, config.max_qos_allowed)  # granted QoS
    no_local = request.no_local or (config.ignore_loop_deliver and group is None)
    sub = Subscription(
        session, topic_filter, real, group, qos, no_local, request.retain_as_published,
        request.retain_handling, sub_id,
    )
    subs[topic_filter] = sub  # replaces an existing one [MQTT-3.8.4-3]
    broker.dispatcher.add(sub)
    return qos, sub, existing is None


def send_retained(
    broker: Broker, session: Session, accepted: list[tuple[Subscription, bool]], now: float
) -> None:
    """Deliver retained messages for new subscriptions per Retain Handling
    [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; never for shared ones."""
    if not broker.config.retain_available or not len(broker.retained):
        return
    upgrade = broker.config.upgrade_qos
    for sub, new in accepted:
        if sub.group is not None:
            continue  # [MQTT-4.8.2-?] retained messages are not sent for shared subscriptions
        handling = sub.retain_handling
        if handling == 2 or (handling == 1 and not new):
            continue
        for message in broker.retained.match(sub.real_filter, now):
            mqos = message.qos
            qos = sub.qos if (sub.qos > mqos if upgrade else sub.qos < mqos) else mqos
            # RETAIN is 1 for retained messages sent on subscribe [MQTT-3.3.1-8]
            session.deliver(message, qos, True, sub.identifier, now)


def unsubscribe(broker: Broker, session: Session, packet: packets.Unsubscribe) -> list[int]:
    """Apply an UNSUBSCRIBE; the MQTT 5 UNSUBACK reason codes."""
    codes = []
    subs = session.subscriptions
    for topic_filter in packet.topic_filters:
        try:
            _, real = parse_share(topic_filter)
            validate_topic_filter(real, broker.config.max_topic_levels)
        except RemoteProtocolError:
            codes.append(TOPIC_FILTER_INVALID)
            continue
        sub = subs.pop(topic_filter, None) if subs else None
        if sub is None:
            codes.append(NO_SUBSCRIPTION_EXISTED)
        else:
            broker.dispatcher.remove(sub)  # [MQTT-3.10.4-1]
            codes.append(0)
    if subs is not None and not subs:
        session.subscriptions = None
    return codes
