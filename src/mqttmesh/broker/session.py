"""Session: one client's subscriptions, inflight window, message queue and QoS 2 state.

Theory of operation: QoS 1 and QoS 2
------------------------------------
*Outgoing* (server -> client). A QoS 1/2 delivery takes a free packet id and an entry in
`inflight` (ordered by send time) until it is acknowledged: PUBACK ends a QoS 1 entry;
PUBREC turns a QoS 2 entry into "released" (we send PUBREL and keep the packet id until
PUBCOMP) [MQTT-4.3.3-2] [MQTT-4.3.3-4]; a PUBREC with a failure reason code ends it.
The window is `inflight_max`: the client's Receive Maximum (v5, capped by `max_inflight`)
or `max_inflight` (3.x) [MQTT-3.3.4-9]. Deliveries beyond it wait in `queue` (bounded by
`max_mqueue_len`, oldest dropped first) and are sent as acknowledgements free the window.
While the client is offline every delivery is queued. On reconnect with a present session
the inflight entries are resent in order with DUP=1 (PUBREL for released ones), then the
queue drains [MQTT-4.4.0-1]. MQTT 3.x clients also get unacknowledged PUBLISH / PUBREL
resent every `retry_interval`; MQTT 5 forbids resending at any other time.

*Incoming* (client -> server), QoS 2, "method B" of the spec: the message is dispatched
when the PUBLISH arrives and its packet id is kept in `awaiting_rel` until PUBREL; a
PUBLISH repeating a packet id still awaiting PUBREL is acknowledged again but not
dispatched again, so subscribers get it exactly once [MQTT-4.3.3-9] [MQTT-4.3.3-10].
`awaiting_rel` holds at most `max_awaiting_rel` ids (our Receive Maximum); ids awaiting
PUBREL longer than `await_rel_timeout` are forgotten.

Per-session structures (inflight, queue, awaiting_rel, subscriptions) are created lazily:
an idle subscriber-less connection holds none of them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

from mqttmesh.broker.message import Message
from mqttmesh.protocol.packets import Will

if TYPE_CHECKING:
    from mqttmesh.broker.broker import Broker
    from mqttmesh.broker.channel import Channel

__all__ = ["Outlet", "Session", "Subscription", "encode_ack"]

PUBACK, PUBREC, PUBREL, PUBCOMP = 0x40, 0x50, 0x62, 0x70
NEVER = float("inf")


class Outlet(Protocol):
    """Where a connection's bytes go; given by runtime per connection."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def encode_ack(first_byte: int, packet_id: int, reason_code: int = 0) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP without properties (hot-path shortcut).

    Reason code 0 uses the short form valid for 3.x and 5.0 [MQTT-3.4.2-1]; a non-zero
    code is for MQTT 5 only.
    """
    if reason_code == 0:
        return bytes((first_byte, 2, packet_id >> 8, packet_id & 0xFF))
    return bytes((first_byte, 3, packet_id >> 8, packet_id & 0xFF, reason_code))


class Subscription:
    """filter -> session, with its options (MQTT 5 §3.8.3.1)."""

    __slots__ = (
        "session", "topic_filter", "real_filter", "group", "qos", "no_local",
        "retain_as_published", "retain_handling", "identifier",
    )

    def __init__(
        self,
        session: Session,
        topic_filter: str,
        real_filter: str,
        group: str | None,
        qos: int,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        identifier: int | None = None,
    ) -> None:
        self.session = session
        self.topic_filter = topic_filter
        self.real_filter = real_filter
        self.group = group
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.identifier = identifier

    def __repr__(self) -> str:
        return f"Subscription({self.session.client_id!r}, {self.topic_filter!r}, qos={self.qos})"


class _Inflight:
    __slots__ = ("message", "qos", "retain", "sub_id", "sent_at", "released")

    def __init__(
        self, message: Message, qos: int, retain: bool, sub_id: int | None, sent_at: float
    ) -> None:
        self.message = message
        self.qos = qos
        self.retain = retain
        self.sub_id = sub_id
        self.sent_at = sent_at
        self.released = False


class Session:
    """State kept for a client id across connections (until it ends or expires)."""

    __slots__ = (
        "client_id", "broker", "channel", "outlet", "version", "expiry_interval",
        "subscriptions", "inflight", "inflight_max", "queue", "awaiting_rel", "next_packet_id",
        "their_max_packet_size", "pending_will", "will_at", "expire_at", "_timer_at",
    )

    def __init__(self, broker: Broker, client_id: str, version: int) -> None:
        self.broker = broker
        self.client_id = client_id
        self.version = version
        self.channel: Channel | None = None
        self.outlet: Outlet | None = None
        self.expiry_interval: float = 0.0
        self.subscriptions: dict[str, Subscription] | None = None
        self.inflight: dict[int, _Inflight] | None = None
        self.inflight_max: int = broker.config.max_inflight
        self.queue: deque[tuple[Message, int, bool, int | None]] | None = None
        self.awaiting_rel: dict[int, float] | None = None
        self.next_packet_id = 1
        self.their_max_packet_size: int = 1 << 62
        self.pending_will: Will | None = None
        self.will_at: float | None = None
        self.expire_at: float | None = None
        self._timer_at: float | None = None

    def __repr__(self) -> str:
        return f"Session({self.client_id!r}, connected={self.outlet is not None})"

    # -- delivery -------------------------------------------------------------------------

    def deliver(
        self, message: Message, qos: int, retain: bool, sub_id: int | None, now: float
    ) -> None:
        """Send one message to the client now, or queue it (offline / window full)."""
        if self.outlet is None:
            self._enqueue(message, qos, retain, sub_id)
            return
        if message.expiry_at is not None and now >= message.expiry_at:
            self.broker.counters.messages_dropped += 1
            return
        if qos == 0:
            self._write_publish(message.encode(self.version, 0, retain, False, None, sub_id, now))
            return
        inflight = self.inflight
        if inflight is None:
            self.inflight = {}
        elif len(inflight) >= self.inflight_max or self.queue:
            self._enqueue(message, qos, retain, sub_id)
            return
        self._send_inflight(message, qos, retain, sub_id, now)

    def _write_publish(self, data: bytes, qos: int = 0) -> bool:
        counters = self.broker.counters
        if len(data) > self.their_max_packet_size:  # [MQTT-3.1.2-25]
            counters.messages_dropped += 1
            return False
        self.outlet.write(data)  # type: ignore[union-attr]
        counters.messages_sent += 1
        counters.sent_qos[qos] += 1
        counters.bytes_sent += len(data)
        return True

    def _send_inflight(
        self, message: Message, qos: int, retain: bool, sub_id: int | None, now: float
    ) -> None:
        inflight = self.inflight
        pid = self.next_packet_id
        while pid in inflight:  # type: ignore[operator]
            pid = pid % 65535 + 1
        data = message.encode(self.version, qos, retain, False, pid, sub_id, now)
        if len(data) > self.their_max_packet_size:  # [MQTT-3.1.2-25]
            self.broker.counters.messages_dropped += 1
            return
        self.outlet.write(data)  # type: ignore[union-attr]
        broker = self.broker
        counters = broker.counters
        counters.messages_sent += 1
        counters.sent_qos[qos] += 1
        counters.bytes_sent += len(data)
        self.next_packet_id = pid % 65535 + 1
        inflight[pid] = _Inflight(message, qos, retain, sub_id, now)  # type: ignore[index]
        if self.version < 5:
            channel = self.channel
            if channel is not None:
                at = now + broker.config.retry_interval
                current = channel._timer_at
                if current is None or at < current:
                    broker.schedule(channel, at)

    def _enqueue(self, message: Message, qos: int, retain: bool, sub_id: int | None) -> None:
        config = self.broker.config
        if qos == 0 and not config.mqueue_store_qos0:
            self.broker.counters.messages_dropped += 1
            return
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        elif config.max_mqueue_len and len(queue) >= config.max_mqueue_len:
            queue.popleft()  # drop the oldest
            broker = self.broker
            broker.counters.messages_dropped += 1
            overflow = broker.queue_overflow  # reported (logged) by the runtime
            overflow[self.client_id] = overflow.get(self.client_id, 0) + 1
        queue.append((message, qos, retain, sub_id))

    def drain(self, now: float) -> None:
        """Send queued messages while connected and the inflight window has room."""
        queue = self.queue
        if not queue:
            return
        counters = self.broker.counters
        if self.inflight is None:
            self.inflight = {}
        inflight = self.inflight
        while queue and self.outlet is not None:
            message, qos, retain, sub_id = queue[0]
            if message.expiry_at is not None and now >= message.expiry_at:
                queue.popleft()
                counters.messages_dropped += 1
            elif qos == 0:
                queue.popleft()
                self._write_publish(
                    message.encode(self.version, 0, retain, False, None, sub_id, now)
                )
            elif len(inflight) < self.inflight_max:
                queue.popleft()
                self._send_inflight(message, qos, retain, sub_id, now)
            else:
                break
        if not queue:
            self.queue = None

    def resume(self, now: float) -> None:
        """After reconnecting to this session: resend unacknowledged packets with DUP=1, then
        drain the queue [MQTT-4.4.0-1]."""
        inflight = self.inflight
        if inflight:
            for pid, entry in inflight.items():
                entry.sent_at = now
                self._resend(pid, entry, now)
        self.drain(now)

    def _resend(self, pid: int, entry: _Inflight, now: float) -> None:
        if entry.released:
            self.broker.write(self.outlet, encode_ack(PUBREL, pid))  # type: ignore[arg-type]
        else:
            msg = entry.message
            data = msg.encode(self.version, entry.qos, entry.retain, True, pid, entry.sub_id, now)
            self._write_publish(data, entry.qos)  # [MQTT-3.3.1-1] DUP=1 on redelivery

    def retry(self, now: float) -> float | None:
        """MQTT 3.x: resend deliveries unacknowledged for retry_interval; next deadline."""
        inflight = self.inflight
        if not inflight or self.outlet is None:
            return None
        interval = self.broker.config.retry_interval
        due = [pid for pid, e in inflight.items() if e.sent_at + interval <= now]
        for pid in due:
            entry = inflight.pop(pid)
            entry.sent_at = now
            inflight[pid] = entry  # move to the end: inflight stays ordered by sent_at
            self._resend(pid, entry, now)
        first = next(iter(inflight.values()), None)
        return None if first is None else first.sent_at + interval

    # -- acknowledgements from the client ---------------------------------------------------

    def on_puback(self, packet_id: int, now: float) -> None:
        inflight = self.inflight
        if inflight is not None:
            entry = inflight.get(packet_id)
            if entry is not None and entry.qos == 1:
                del inflight[packet_id]
                if self.queue:
                    self.drain(now)

    def on_pubrec(self, packet_id: int, reason_code: int, now: float) -> None:
        inflight = self.inflight
        entry = inflight.get(packet_id) if inflight is not None else None
        if entry is None or entry.qos != 2:
            if self.version == 5:
                self.broker.write(self.outlet, encode_ack(PUBREL, packet_id, 0x92))
            else:
                self.broker.write(self.outlet, encode_ack(PUBREL, packet_id))
            return
        if reason_code >= 0x80:  # the receiver refused it: the flow ends here
            del inflight[packet_id]  # type: ignore[union-attr]
            if self.queue:
                self.drain(now)
            return
        entry.released = True
        entry.sent_at = now
        self.broker.write(self.outlet, encode_ack(PUBREL, packet_id))  # [MQTT-4.3.3-4]

    def on_pubcomp(self, packet_id: int, now: float) -> None:
        inflight = self.inflight
        if inflight is not None:
            entry = inflight.get(packet_id)
            if entry is not None and entry.released:
                del inflight[packet_id]
                if self.queue:
                    self.drain(now)

    # -- incoming QoS 2 ---------------------------------------------------------------------

    def awaiting(self, packet_id: int) -> bool:
        """True if this packet id was received with QoS 2 and awaits PUBREL."""
        ar = self.awaiting_rel
        return ar is not None and packet_id in ar

    def awaiting_count(self) -> int:
        ar = self.awaiting_rel
        return 0 if ar is None else len(ar)

    def await_rel(self, packet_id: int, now: float) -> None:
        ar = self.awaiting_rel
        if ar is None:
            ar = self.awaiting_rel = {}
        ar[packet_id] = now

    def release(self, packet_id: int) -> bool:
        """PUBREL received: forget the packet id; False if it was not awaiting PUBREL."""
        ar = self.awaiting_rel
        if ar is None or ar.pop(packet_id, None) is None:
            return False
        return True

    def expire_awaiting_rel(self, now: float) -> float | None:
        """Forget ids awaiting PUBREL longer than await_rel_timeout; next deadline."""
        ar = self.awaiting_rel
        if not ar:
            return None
        timeout = self.broker.config.await_rel_timeout
        for pid, at in list(ar.items()):
            if at + timeout > now:
                return at + timeout
            del ar[pid]
        return None

    # -- offline timers ---------------------------------------------------------------------

    def on_timer(self, now: float) -> float | None:
        """Will delay and session expiry while no connection is attached."""
        if self.channel is not None:
            return None
        if self.will_at is not None and now >= self.will_at:
            self.broker.publish_will(self, now)
        if self.expire_at is not None and now >= self.expire_at:
            self.broker.end_session(self, now)
            return None
        deadlines = [t for t in (self.will_at, self.expire_at) if t is not None]
        return min(deadlines) if deadlines else None
