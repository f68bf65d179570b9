"""Forwarding between nodes: message encoding, the sender's outbox, the receiver's dedup.

Theory of operation
-------------------
A publish is matched on the node where it arrives; the runtime puts it in the ``Outbox`` of
every destination node once (not once per subscriber). Per loop iteration the outbox turns
what was added into at most two ``FORWARD`` messages: one QoS 0 batch (``seq`` 0: sent if the
link is up, else dropped: at-most-once) and one QoS 1/2 batch with the next ``seq`` of this
sender's *stream*, kept until the receiver's ``FORWARD_ACK`` (at-least-once): on reconnect
``resend()`` repeats every unacknowledged batch in order. The receiver's ``Inbox`` keeps, per
sender, the stream id and the highest ``seq`` dispatched: since a sender numbers its batches
in order and a link delivers in order, a batch at or below that mark is a retry, acked again
and not dispatched twice. A new stream (the sender restarted) starts a new mark.
While the link is down the outbox is bounded (``max_pending`` messages): beyond it the oldest
batch is dropped and counted, so an unreachable peer cannot exhaust memory. While the link
is up nothing is dropped (a slow peer makes the queue grow, as a slow subscriber does).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any

from mqttmesh.broker import Message
from mqttmesh.cluster.wire import v1
from mqttmesh.protocol.properties import NO_PROPERTIES, Properties

__all__ = ["encode_message", "decode_message", "Outbox", "Inbox", "FORWARDED_PROPERTIES"]

FORWARDED_PROPERTIES = ("payload_format_indicator", "content_type", "response_topic",
                        "correlation_data", "user_properties")
"""MQTT 5 properties that travel with a message (topic alias and subscription ids do not;
message expiry travels as ``ttl``)."""


def encode_message(message: Message, now: float) -> list[Any]:
    """The v1 wire form of a message."""
    props: dict[str, Any] = {}
    p = message.properties
    if p is not NO_PROPERTIES:
        for key in FORWARDED_PROPERTIES:
            value = getattr(p, key)
            if value is not None and value != ():
                props[key] = [list(kv) for kv in value] if key == "user_properties" \
                    else value
    ttl = None if message.expiry_at is None else max(message.expiry_at - now, 0.0)
    return [message.topic, message.payload, message.qos, message.retain, props,
            message.sender, message.sender_node, ttl]


def decode_message(fields: Any, now: float) -> Message:
    """A Message from its wire form.

    Raises:
        ValueError: malformed.
    """
    if not isinstance(fields, list) or len(fields) != 8:
        raise ValueError("malformed forwarded message")
    topic, payload, qos, retain, props, sender, sender_node, ttl = fields
    if not isinstance(topic, str) or not isinstance(payload, bytes) or qos not in (0, 1, 2) \
            or not isinstance(props, dict):
        raise ValueError("malformed forwarded message")
    properties = NO_PROPERTIES
    if props:
        kw = {k: v for k, v in props.items() if k in FORWARDED_PROPERTIES}
        if "user_properties" in kw:
            kw["user_properties"] = tuple((str(k), str(v)) for k, v in kw["user_properties"])
        properties = replace(Properties(), **kw)
    expiry_at = None if ttl is None else now + float(ttl)
    return Message(topic, payload, qos, bool(retain), properties,
                   sender if isinstance(sender, str) else None,
                   sender_node if isinstance(sender_node, str) else None, expiry_at)


class Outbox:
    """What this node still has to forward to one destination node."""

    def __init__(self, stream: str, max_pending: int = 100_000) -> None:
        self.stream = stream
        self._base = stream
        self._restarts = 0
        self.max_pending = max_pending
        self._qos0: list[list[Any]] = []
        self._reliable: list[list[Any]] = []
        self._unacked: OrderedDict[int, list[list[Any]]] = OrderedDict()
        self._unacked_count = 0
        self._seq = 0
        self.dropped = 0

    def add(self, encoded: list[Any], qos: int) -> None:
        (self._reliable if qos else self._qos0).append(encoded)

    @property
    def has_new(self) -> bool:
        return bool(self._qos0 or self._reliable)

    @property
    def unacked(self) -> int:
        return self._unacked_count

    def take(self, connected: bool) -> list[list[Any]]:
        """FORWARD messages for what was added since the last call."""
        out: list[list[Any]] = []
        if self._qos0:
            if connected:
                out.append([v1.FORWARD, self.stream, 0, self._qos0])
            else:
                self.dropped += len(self._qos0)
            self._qos0 = []
        if self._reliable:
            self._seq += 1
            batch, self._reliable = self._reliable, []
            self._unacked[self._seq] = batch
            self._unacked_count += len(batch)
            dropped = False
            while not connected and self._unacked_count > self.max_pending \
                    and len(self._unacked) > 1:
                _, old = self._unacked.popitem(last=False)
                self._unacked_count -= len(old)
                self.dropped += len(old)
                dropped = True
            if dropped:
                self._restart_stream()
            if connected:
                out.append([v1.FORWARD, self.stream, self._seq, batch])
        return out

    def _restart_stream(self) -> None:
        """Batches were dropped: the receiver accepts only the next seq of a stream, so
        what is left goes on a new stream numbered from 1 (the gap is not waited for)."""
        self._restarts += 1
        self.stream = f"{self._base}~{self._restarts}"
        batches = list(self._unacked.values())
        self._unacked = OrderedDict(enumerate(batches, 1))
        self._seq = len(batches)

    @property
    def head(self) -> int | None:
        """The first unacknowledged seq (None: nothing waits)."""
        return next(iter(self._unacked), None)

    def ack(self, seq: int, stream: str | None = None) -> None:
        """The receiver dispatched every batch up to ``seq`` of ``stream`` (None: the
        current one; a v1 ack, which comes back on the link the batch went out on)."""
        if stream is not None and stream != self.stream:
            return  # a late ack of a stream we restarted: says nothing about the new one
        while self._unacked:
            first = next(iter(self._unacked))
            if first > seq:
                break
            batch = self._unacked.pop(first)
            self._unacked_count -= len(batch)

    def resend(self) -> list[list[Any]]:
        """Every unacknowledged batch, in order (after a reconnect)."""
        return [[v1.FORWARD, self.stream, seq, batch] for seq, batch in self._unacked.items()]


class Inbox:
    """Receiver side: per sender node, the stream and the highest seq dispatched *in order*.

    A batch is dispatched only if it is the next one of its stream (``seq == mark + 1``),
    so a batch lost on a relayed path (a hop closed between two nodes without a link of
    their own) is never skipped: later batches wait, unacknowledged, until the sender
    resends from the first one missing. A sender's new stream starts at 1 (a restart, a
    re-admission, or batches dropped while unreachable); the first stream seen from a sender
    (we restarted) is taken from wherever it is.
    """

    def __init__(self) -> None:
        self._marks: dict[str, tuple[str, int]] = {}
        self._retired: dict[str, list[str]] = {}  # per sender: streams it moved on from
        self.duplicates = 0
        self.gaps = 0

    def accept(self, sender: str, stream: str, seq: int) -> bool:
        """Whether to dispatch the batch; then acknowledge ``mark(sender, stream)``."""
        if seq == 0:
            return True
        current = self._marks.get(sender)
        if stream in self._retired.get(sender, ()):
            self.duplicates += 1  # a late batch of a stream the sender left: never again
            return False
        if current is None or (current[0] != stream and seq == 1):
            if current is not None:
                retired = self._retired.setdefault(sender, [])
                retired.append(current[0])
                del retired[:-8]
            self._marks[sender] = (stream, seq)
            return True
        if current[0] != stream:
            self.gaps += 1
            return False
        if seq <= current[1]:
            self.duplicates += 1
            return False
        if seq > current[1] + 1:
            self.gaps += 1
            return False
        self._marks[sender] = (stream, seq)
        return True

    def mark(self, sender: str, stream: str) -> int:
        """The highest seq of ``stream`` dispatched in order (0: none)."""
        current = self._marks.get(sender)
        return current[1] if current is not None and current[0] == stream else 0
