"""Broker: one node's pub/sub engine — channels, sessions, routing, retained messages, timers.

Sans-IO: time is the `now` argument (monotonic seconds) and bytes leave through the
Outlets that runtime gives to `open_channel`. Timers live in one heap of
(deadline, seq, owner); an owner (Channel or Session) remembers the deadline of its live
entry in `_timer_at`, so a superseded entry is recognised and skipped when popped, and
`owner.on_timer(now)` returns the owner's next deadline (or None).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from mqttmesh import access
from mqttmesh.broker.channel import Channel
from mqttmesh.broker.config import BrokerConfig
from mqttmesh.broker.dispatch import ClusterHooks, Dispatcher
from mqttmesh.broker.message import Message
from mqttmesh.broker.migration import SessionState, restore, snapshot
from mqttmesh.broker.retained import RetainedStore
from mqttmesh.broker.session import Outlet, Session
from mqttmesh.broker.sessions import SessionRegistry
from mqttmesh.broker.stats import BrokerStats, Counters
from mqttmesh.protocol import matches
from mqttmesh.protocol.packets import Connect, Will

__all__ = ["Broker", "AuthenticateHook"]

AuthenticateHook = Callable[[Connect], int]
"""`authenticate(connect) -> reason code`: 0 accepts; e.g. 0x86 / 0x87 refuse (CONNACK)."""


class _TimerOwner(Protocol):
    _timer_at: float | None

    def on_timer(self, now: float) -> float | None: ...


class Broker:
    """The broker engine of one node.

    Args:
        config: limits and features (`BrokerConfig`).
        cluster: the cluster layer's hooks, None when standalone.
        authenticate: called with every CONNECT; returns 0 to accept or an MQTT 5 reason
            code to refuse with (mapped to a 3.1.1 return code for 3.x clients).
        rng: randomness for shared-subscription strategies (tests pass a seeded one).
        authenticator: `mqttmesh.access.Authenticator` (built-in user store); its
            `is_superuser` answer is kept for authorization.
        authorizer: `mqttmesh.access.Authorizer` (ACL): checked on PUBLISH, SUBSCRIBE and
            will messages (docs/access.md).
    """

    def __init__(
        self,
        config: BrokerConfig,
        cluster: ClusterHooks | None = None,
        authenticate: AuthenticateHook | None = None,
        rng: random.Random | None = None,
        *,
        authenticator: access.Authenticator | None = None,
        authorizer: access.Authorizer | None = None,
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.authenticate = authenticate
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.counters = Counters()
        self.dispatcher = Dispatcher(config, self.counters, cluster, rng or random.Random())
        self.retained = RetainedStore()
        self.sessions = SessionRegistry(self)
        self.channels: set[Channel] = set()
        self.waiting: dict[str, Channel] = {}  # client id -> CONNECT awaiting its session
        self.queue_overflow: dict[str, int] = {}
        """client id -> messages dropped since the runtime last took this: its queue was full
        (``max_mqueue_len``, oldest dropped). The runtime logs and clears it."""
        self.session_connecting: Callable[[str, bool], bool] | None = getattr(
            cluster, "session_connecting", None
        )
        self._session_ended: Callable[[str], None] | None = getattr(cluster, "session_ended", None)
        self.routes_barrier: Callable[[Callable[[], None]], bool] | None = getattr(
            cluster, "routes_barrier", None
        )
        self.connections = 0
        self._timers: list[tuple[float, int, _TimerOwner]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)

    # -- runtime API ------------------------------------------------------------------------

    def open_channel(self, outlet: Outlet, peer: str, listener: str, now: float) -> Channel:
        """A new network connection: returns the Channel that runtime feeds bytes to."""
        channel = Channel(self, outlet, peer, listener, now)
        self.channels.add(channel)
        self.schedule(channel, now + self.config.idle_timeout)
        return channel

    def tick(self, now: float) -> float | None:
        """Run every timer due at `now`; returns the next deadline (None: no timer)."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, owner = heapq.heappop(timers)
            if owner._timer_at != at:
                continue  # superseded by an earlier deadline
            owner._timer_at = None
            nxt = owner.on_timer(now)
            if nxt is not None:
                self.schedule(owner, nxt)
        while timers and timers[0][2]._timer_at != timers[0][0]:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def schedule(self, owner: _TimerOwner, at: float) -> None:
        """Make sure `owner.on_timer` runs no later than `at`."""
        current = owner._timer_at
        if current is not None and current <= at:
            return
        owner._timer_at = at
        heapq.heappush(self._timers, (at, next(self._seq), owner))

    def publish(self, message: Message, now: float) -> int:
        """A message published on this node (a client, a will, $SYS): store it if retained,
        hand it to the cluster, dispatch it locally; returns local deliveries."""
        if not message.id:
            message.id = next(self._ids)
        if message.sender_node is None:
            message.sender_node = self.config.node_name
        if message.retain and self.config.retain_available:
            self.retained.set(message)  # [MQTT-3.3.1-5]
        if self.cluster is not None:
            self.cluster.forward(message)
            self.counters.messages_forwarded += 1
            return self.dispatcher.dispatch(message, now, not self.dispatcher.cluster_shares)
        delivered = self.dispatcher.dispatch(message, now)
        if not delivered:
            self.counters.messages_dropped += 1  # standalone and no subscriber
        return delivered

    def dispatch_remote(self, message: Message, now: float) -> int:
        """A message forwarded by a peer: dispatch to local subscribers only.

        Retained messages are not stored here: replicating the retained store is the
        cluster layer's job (`broker.retained.set` / `.delete`).
        """
        if not message.id:
            message.id = next(self._ids)
        self.counters.messages_from_peers += 1
        return self.dispatcher.dispatch(message, now, not self.dispatcher.cluster_shares)

    def dispatch_shared(self, message: Message, group: str, real_filter: str, now: float) -> bool:
        """Deliver to one local member of shared group `group` on `real_filter` (for a
        cluster that picks shared-group members cluster-wide); False if none is here."""
        return self.dispatcher.dispatch_shared(message, group, real_filter, now)

    def local_filters(self) -> Iterable[str]:
        """Real filters (``$share/g/a/b`` counts as ``a/b``) with a local subscription."""
        return self.dispatcher.filters()

    def statistics(self) -> BrokerStats:
        c = self.counters
        return BrokerStats(
            connections=self.connections,
            channels=len(self.channels),
            sessions=len(self.sessions),
            subscriptions=self.dispatcher.subscriptions,
            shared_subscriptions=self.dispatcher.shared_subscriptions,
            routes=len(self.dispatcher.trie),
            retained=len(self.retained),
            messages_received=c.messages_received,
            messages_sent=c.messages_sent,
            messages_dropped=c.messages_dropped,
            messages_forwarded=c.messages_forwarded,
            messages_from_peers=c.messages_from_peers,
            bytes_received=c.bytes_received,
            bytes_sent=c.bytes_sent,
            messages_received_qos=tuple(c.received_qos),  # type: ignore[arg-type]
            messages_sent_qos=tuple(c.sent_qos),  # type: ignore[arg-type]
        )

    def shutdown(self, now: float) -> None:
        """Close every connection (MQTT 5: DISCONNECT 0x8B server shutting down)."""
        for channel in list(self.channels):
            channel.kick(0x8B, now)

    def kick(self, client_id: str, now: float) -> bool:
        """Close a client's connection (v5: DISCONNECT 0x98 administrative action)."""
        session = self.sessions.get(client_id)
        if session is None or session.channel is None:
            return False
        session.channel.kick(0x98, now)
        return True

    # -- session migration (cluster layer) ----------------------------------------------------

    def export_session(self, client_id: str, now: float) -> SessionState | None:
        """Hand this node's session of a client to another node.

        Closes its connection (MQTT 5: DISCONNECT 0x8E session taken over [MQTT-3.1.4-3]),
        removes the session and its routes here and returns its state; None if there is no
        session (or it ended with the connection: session expiry 0). A pending will is
        dropped: the client reconnected [MQTT-3.1.3-9].
        """
        session = self.sessions.get(client_id)
        if session is not None and session.channel is not None:
            session.channel.kick(0x8E, now)
            session = self.sessions.get(client_id)
        if session is None:
            return None
        state = snapshot(session)
        session.pending_will = None
        session.will_at = None
        session.queue = None
        session.inflight = None  # they travel with the state: not redispatched here
        self.end_session(session, now)
        return state

    def import_session(self, state: SessionState, now: float) -> None:
        """Install a session exported by another node; a CONNECT waiting for it completes
        with session present = 1, otherwise the session waits (and expires) here."""
        session = restore(self, state, now)
        channel = self.waiting.pop(state.client_id, None)
        if channel is not None and not channel.closed:
            channel.resume_connect(now)
        else:
            self.detach(session, None, now)

    def session_unavailable(self, client_id: str, now: float) -> None:
        """The session a CONNECT waits for is not coming: start it without one."""
        channel = self.waiting.pop(client_id, None)
        if channel is not None:
            channel.resume_connect(now)

    def discard_session(self, client_id: str, now: float) -> bool:
        """End a client's session here (it connected elsewhere with clean start): close its
        connection (MQTT 5: 0x8E) and drop the session; True if there was one."""
        session = self.sessions.get(client_id)
        if session is None:
            return False
        if session.channel is not None:
            session.channel.kick(0x8E, now)
        session = self.sessions.get(client_id)
        if session is not None:
            self.end_session(session, now)
        return True

    def _redispatch_shared(self, pending: list[tuple[Message, str, str]], now: float) -> None:
        """A shared-group member's session ended with QoS 1/2 messages it had not
        acknowledged (or not yet received): each goes to another member of its group."""
        hook = getattr(self.cluster, "shared_redispatch", None)
        for message, group, real_filter in pending:
            if hook is not None:
                hook(message, group, real_filter)
            else:
                self.dispatcher.dispatch_shared(message, group, real_filter, now)

    # -- used by Channel and Session ----------------------------------------------------------

    def next_message_id(self) -> int:
        return next(self._ids)

    def write(self, outlet: Outlet | None, data: bytes) -> None:
        """Write a control packet (counted in bytes_sent)."""
        if outlet is not None:
            outlet.write(data)
            self.counters.bytes_sent += len(data)

    def detach(self, session: Session, will: Will | None, now: float) -> None:
        """The session's connection is gone: start its will delay / expiry, or end it."""
        session.channel = None
        session.outlet = None
        if will is not None:
            session.pending_will = will
            delay = will.properties.will_delay_interval or 0
            if delay and session.expiry_interval:
                session.will_at = now + delay  # [MQTT-3.1.3-9]
            else:
                self.publish_will(session, now)
        if session.expiry_interval == 0:
            self.end_session(session, now)
            return
        if session.expiry_interval != float("inf"):
            session.expire_at = now + session.expiry_interval
        deadlines = [t for t in (session.will_at, session.expire_at) if t is not None]
        if deadlines:
            self.schedule(session, min(deadlines))

    def publish_will(self, session: Session, now: float) -> None:
        """Publish the session's pending will message [MQTT-3.1.2-8]."""
        will = session.pending_will
        session.pending_will = None
        session.will_at = None
        if will is None:
            return
        props = will.properties
        if props.will_delay_interval is not None:
            props = replace(props, will_delay_interval=None)
        expiry = props.message_expiry_interval
        self.publish(
            Message(
                will.topic, will.payload, will.qos, will.retain, props, session.client_id,
                self.config.node_name, None if expiry is None else now + expiry,
                next(self._ids),
            ),
            now,
        )

    def end_session(self, session: Session, now: float) -> None:
        """The session ends: publish a pending will, drop its subscriptions and state."""
        if session.pending_will is not None:
            self.publish_will(session, now)
        redispatch = _shared_pending(session) if session.subscriptions else None
        if session.subscriptions:
            for sub in session.subscriptions.values():
                self.dispatcher.remove(sub)
            session.subscriptions = None
        if redispatch:
            self._redispatch_shared(redispatch, now)
        if session.queue:
            self.counters.messages_dropped += len(session.queue)
        session.queue = None
        session.inflight = None
        session.awaiting_rel = None
        session.expire_at = None
        self.sessions.remove(session)
        if self._session_ended is not None:
            self._session_ended(session.client_id)


def _shared_pending(session: Session) -> list[tuple[Message, str, str]]:
    """The session's unacknowledged (inflight, not yet PUBREC'd) and queued QoS 1/2 messages
    that reached it through a shared subscription only, with that (group, real filter)."""
    subs = session.subscriptions
    shared = [s for s in subs.values() if s.group is not None] if subs else []
    if not shared:
        return []
    messages = [e.message for e in (session.inflight or {}).values() if not e.released]
    messages += [m for m, qos, _, _ in (session.queue or ()) if qos > 0]
    out = []
    for message in messages:
        topic = message.topic
        if any(s.group is None and matches(s.real_filter, topic) for s in subs.values()):
            continue  # also a plain subscription's delivery: not the group's to redo
        for s in shared:
            if matches(s.real_filter, topic):
                out.append((message, s.group, s.real_filter))
                break
    return out
