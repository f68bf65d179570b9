"""Wire version 2: v1 plus the messages of core/replicant clusters.

Every v1 message keeps its meaning (STYLE rule 11); v2 adds two types. A link speaks v2 when
both sides list it in the handshake (``SUPPORTED_VERSIONS``); a replicant needs v2 on its
uplink, so a core that speaks only v1 cannot serve replicants.

    RELAY     [14, src, dst, message]
              ``message`` (any v2 message but HEARTBEAT / RELAY) from node ``src`` to node
              ``dst`` that has no link to ``src``: replicant -> its core -> (the core of
              ``dst``) -> ``dst``; at most three hops. On the distribution port it carries
              REQUEST / REPLY / ROUTE_ACK / RETAINED / ...; on the RPC port FORWARD and
              FORWARD_ACK (end-to-end acks: the relays keep nothing).
    FORWARD_ACK2 [16, stream, seq]   (RPC port) FORWARD_ACK naming its stream: acks of a
              relayed stream may come back on another link than the FORWARD went out on, so
              a late ack of a restarted stream must not confirm the new one's batches
    TOPOLOGY  [15, core, {replicant: incarnation}, [running node, ...]]
              sent by a core to the other cores and to its replicants on every change and
              every gossip round: the replicants attached to ``core`` now (each with the
              incarnation of the view entry written when it attached, so a stale report of
              an earlier attachment is ignored), and the nodes ``core`` sees running (a
              replicant takes its ``running_nodes`` from its core's report).
"""

from __future__ import annotations

from typing import Any

from mqttmesh.cluster.wire import v1
from mqttmesh.cluster.wire.codec import FrameError

__all__ = ["VERSION", "RELAY", "TOPOLOGY", "FORWARD_ACK2", "validate"]

VERSION = 2

RELAY = 14
TOPOLOGY = 15
FORWARD_ACK2 = 16

_SHAPES: dict[int, tuple[type, ...]] = {
    RELAY: (str, str, list),
    TOPOLOGY: (str, dict, list),
    FORWARD_ACK2: (str, int),
}


def validate(message: list[Any]) -> int:
    """Check a decoded v2 message (v1 types included) has its type's shape; return the type.

    Raises:
        FrameError: unknown type or wrong fields.
    """
    kind0 = message[0] if isinstance(message, list) and message else None
    shape = _SHAPES.get(kind0) if type(kind0) is int else None
    if shape is None:
        return v1.validate(message)
    kind = int(message[0])
    if len(message) != len(shape) + 1:
        raise FrameError(f"message type {kind} with {len(message) - 1} fields")
    for value, expected in zip(message[1:], shape):
        if not isinstance(value, expected):
            raise FrameError(f"message type {kind}: bad field {value!r:.40}")
    if kind == RELAY:
        inner = message[3]
        if not inner or inner[0] in (v1.HEARTBEAT, RELAY):
            raise FrameError("relay of an empty, heartbeat or relay message")
        validate(inner)
    return kind
