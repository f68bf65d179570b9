"""Session migration between nodes: a plain snapshot of a Session, exported and imported.

When a client with a persistent session connects to another node, the cluster layer moves
its session there (SPEC §4 "sessions follow the client"): the old node `export_session`s
it (closing the old connection with 0x8E session taken over and removing its routes), the
new node `import_session`s the snapshot and completes the waiting CONNECT with
session present = 1 [MQTT-3.2.2-2]. The snapshot is plain data (tuples of ints, strings and
`Message`s) that the cluster layer serializes; times are relative (seconds remaining).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mqttmesh.broker.message import Message
from mqttmesh.broker.session import Session, Subscription, _Inflight
from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol import parse_share

if TYPE_CHECKING:
    from mqttmesh.broker.broker import Broker

__all__ = ["SessionState", "snapshot", "restore"]


@dataclass(frozen=True, slots=True)
class SessionState:
    """Everything a session carries to another node.

    Attributes:
        client_id: the session's client id.
        expiry_interval: session expiry interval in seconds (``inf`` = never).
        subscriptions: ``(topic_filter, qos, no_local, retain_as_published,
            retain_handling, subscription_identifier | None)`` per subscription.
        inflight: ``(packet_id, message, qos, retain, subscription_identifier | None,
            released)`` per unacknowledged delivery, oldest first (released = PUBREC seen,
            PUBREL to resend).
        queue: ``(message, qos, retain, subscription_identifier | None)`` per queued
            delivery, oldest first.
        awaiting_rel: packet ids of QoS 2 publishes received and awaiting PUBREL.
        next_packet_id: the next packet id to try.
    """

    client_id: str
    expiry_interval: float
    subscriptions: tuple[tuple[str, int, bool, bool, int, int | None], ...] = ()
    inflight: tuple[tuple[int, Message, int, bool, int | None, bool], ...] = ()
    queue: tuple[tuple[Message, int, bool, int | None], ...] = ()
    awaiting_rel: tuple[int, ...] = ()
    next_packet_id: int = 1


def snapshot(session: Session) -> SessionState:
    """The session's state as plain data."""
    subs = tuple(
        (s.topic_filter, s.qos, s.no_local, s.retain_as_published, s.retain_handling,
         s.identifier)
        for s in (session.subscriptions or {}).values()
    )
    inflight = tuple(
        (pid, e.message, e.qos, e.retain, e.sub_id, e.released)
        for pid, e in (session.inflight or {}).items()
    )
    return SessionState(
        session.client_id, session.expiry_interval, subs, inflight,
        tuple(session.queue or ()), tuple(session.awaiting_rel or ()),
        session.next_packet_id,
    )


def restore(broker: Broker, state: SessionState, now: float) -> Session:
    """Install a detached session from a snapshot (replacing any local one)."""
    existing = broker.sessions.get(state.client_id)
    if existing is not None:
        if existing.channel is not None:
            existing.channel.kick(0x8E, now)
        existing = broker.sessions.get(state.client_id)
        if existing is not None:
            broker.end_session(existing, now)
    session, _ = broker.sessions.open(state.client_id, True, 5, now)
    session.expiry_interval = state.expiry_interval
    session.next_packet_id = state.next_packet_id
    for topic_filter, qos, no_local, rap, handling, identifier in state.subscriptions:
        try:
            group, real = parse_share(topic_filter)
        except RemoteProtocolError:
            continue
        if session.subscriptions is None:
            session.subscriptions = {}
        sub = Subscription(session, topic_filter, real, group, qos, no_local, rap, handling,
                           identifier)
        session.subscriptions[topic_filter] = sub
        broker.dispatcher.add(sub)
    if state.inflight:
        session.inflight = {}
        for pid, message, qos, retain, sub_id, released in state.inflight:
            entry = _Inflight(message, qos, retain, sub_id, now)
            entry.released = released
            session.inflight[pid] = entry
    if state.queue:
        session.queue = deque(state.queue)
    if state.awaiting_rel:
        session.awaiting_rel = dict.fromkeys(state.awaiting_rel, now)
    return session
