"""Wire version 1: the messages nodes (and ctl) exchange after the handshake.

This module never changes meaning: a new or changed message goes in ``v2`` and the handshake
picks the highest version both sides speak (STYLE rule 11). A message is a msgpack array
``[TYPE, field, ...]``; a frame carries a batch of them (``wire.codec``).

Distribution link (4370 + offset; every node connects to every member, both ways):
    HEARTBEAT     [1]                                      every second on every link
    VIEW          [2, {name: [incarnation, status, role]}] membership gossip
    ROUTE_DELTAS  [3, origin, epoch, first_version, [[op, filter], ...]]   op 1 add, 0 delete
    ROUTE_DIGEST  [4, origin, epoch, version, hash]        "this is what my routes are"
    ROUTE_RESYNC  [5, origin]                              "send me your routes in full"
    ROUTE_SNAPSHOT [6, origin, epoch, version, [filter, ...]]
    REQUEST       [7, request_id, op, {args}]              ctl and node-to-node operations
    REPLY         [8, request_id, ok, result]              result: dict, or the error text
    BYE           [9, reason, {info}]                      "you are not in my cluster"
    ROUTE_ACK     [12, epoch, version]    "I hold your routes at (epoch, version)"
    RETAINED      [13, [[topic, ms, origin, message | None], ...]]   retained writes (None:
                  deleted), last writer wins by (ms, origin); full set on every link start

RPC link (5370 + offset; forwarding):
    FORWARD       [10, stream, seq, [message, ...]]  seq 0: QoS 0 batch, never acknowledged
    FORWARD_ACK   [11, seq]
    (stream: the sender's id for this process run; seqs grow within a stream, so the receiver
    dedups retried batches with a per-stream high-water mark.)
    message = [topic, payload, qos, retain, {properties}, sender, sender_node, ttl]
    (ttl: seconds the message may still live, or None; monotonic clocks differ per node).
"""

from __future__ import annotations

from typing import Any

from mqttmesh.cluster.wire.codec import FrameError

__all__ = [
    "VERSION",
    "HEARTBEAT", "VIEW", "ROUTE_DELTAS", "ROUTE_DIGEST", "ROUTE_RESYNC", "ROUTE_SNAPSHOT",
    "REQUEST", "REPLY", "BYE", "FORWARD", "FORWARD_ACK", "ROUTE_ACK", "RETAINED",
    "OP_ADD", "OP_DELETE",
    "validate",
]

VERSION = 1

HEARTBEAT = 1
VIEW = 2
ROUTE_DELTAS = 3
ROUTE_DIGEST = 4
ROUTE_RESYNC = 5
ROUTE_SNAPSHOT = 6
REQUEST = 7
REPLY = 8
BYE = 9
FORWARD = 10
FORWARD_ACK = 11
ROUTE_ACK = 12
RETAINED = 13

OP_DELETE = 0
OP_ADD = 1

_S, _I, _L, _D, _B, _A = str, int, list, dict, bool, object
_SHAPES: dict[int, tuple[type, ...]] = {
    HEARTBEAT: (),
    VIEW: (_D,),
    ROUTE_DELTAS: (_S, _S, _I, _L),
    ROUTE_DIGEST: (_S, _S, _I, _I),
    ROUTE_RESYNC: (_S,),
    ROUTE_SNAPSHOT: (_S, _S, _I, _L),
    REQUEST: (_I, _S, _D),
    REPLY: (_I, _B, _A),
    BYE: (_S, _D),
    FORWARD: (_S, _I, _L),
    FORWARD_ACK: (_I,),
    ROUTE_ACK: (_S, _I),
    RETAINED: (_L,),
}


def validate(message: list[Any]) -> int:
    """Check a decoded message has its type's shape; return the type.

    Unknown types are refused: a peer speaking v1 sends only v1 messages.

    Raises:
        FrameError: unknown type or wrong fields.
    """
    kind = message[0] if isinstance(message, list) and message else None
    if type(kind) is not int:
        raise FrameError(f"not a message: {message!r:.40}")
    shape = _SHAPES.get(kind)
    if shape is None:
        raise FrameError(f"unknown message type {kind}")
    if len(message) != len(shape) + 1:
        raise FrameError(f"message type {kind} with {len(message) - 1} fields")
    for value, expected in zip(message[1:], shape):
        if expected is not object and not isinstance(value, expected):
            raise FrameError(f"message type {kind}: bad field {value!r:.40}")
    return int(kind)
