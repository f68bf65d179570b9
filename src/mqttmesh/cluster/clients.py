"""Cluster client registry: client id -> (node, generation), ordered by Lamport generations.

Theory of operation
-------------------
**Algorithm: owner-based registry with Lamport generations (highest generation wins).**
Every accepted CONNECT *claims* its client id on the node that accepted it: the claim's
generation is one more than any generation this node has seen (a Lamport clock), so a
CONNECT that happens after a node learned of another claim always carries a higher
generation. Ties (two nodes claiming the same number concurrently) are broken by the node
name: claims are totally ordered by ``(generation, node)``. The claiming node asks every
running member to give the client id up (``cluster_sessions``); a member *observes* the
claim (it keeps the highest one it has seen) and, if the claim is newer than its own, hands
over or discards its session. The entry is *released* by its owner when the session ends
there (and on every node when the owner leaves the cluster).

Invariants
----------
1. ``observe`` only ever moves an entry to a higher ``(generation, node)``: replaying,
   reordering or duplicating claims converges every replica to the highest claim.
2. ``claim`` returns a generation above every generation observed so far on this node.
3. ``release(cid, node, gen)`` removes an entry only if it is still that exact claim:
   a late release can never remove a newer owner's entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mqttmesh.broker import SessionState
from mqttmesh.cluster.forwarding import decode_message, encode_message

__all__ = ["ClientRegistry", "Claim", "encode_session_state", "decode_session_state"]

Claim = tuple[int, str]
"""``(generation, node)``: the total order of claims on a client id."""


class ClientRegistry:
    """One node's replica of the cluster client registry (sans-IO, deterministic)."""

    __slots__ = ("_entries", "clock")

    def __init__(self) -> None:
        self._entries: dict[str, Claim] = {}
        self.clock = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[str, Claim]]:
        return iter(list(self._entries.items()))

    def get(self, client_id: str) -> Claim | None:
        return self._entries.get(client_id)

    def owner(self, client_id: str) -> str | None:
        entry = self._entries.get(client_id)
        return entry[1] if entry is not None else None

    def claim(self, client_id: str, node: str) -> int:
        """A CONNECT of ``client_id`` accepted on ``node`` (this node): its generation."""
        self.clock += 1
        self._entries[client_id] = (self.clock, node)
        return self.clock

    def observe(self, client_id: str, node: str, generation: int) -> bool:
        """A claim seen from another node; True if it is the newest we know of."""
        if generation > self.clock:
            self.clock = generation
        current = self._entries.get(client_id)
        if current is not None and current >= (generation, node):
            return current == (generation, node)
        self._entries[client_id] = (generation, node)
        return True

    def newer_than(self, client_id: str, node: str, generation: int) -> bool:
        """Whether we know a claim on ``client_id`` above ``(generation, node)``."""
        current = self._entries.get(client_id)
        return current is not None and current > (generation, node)

    def release(self, client_id: str, node: str, generation: int | None = None) -> bool:
        """The session of ``client_id`` ended on ``node``: forget the entry if it is still
        that node's (and that generation's, when given)."""
        current = self._entries.get(client_id)
        if current is None or current[1] != node:
            return False
        if generation is not None and current[0] != generation:
            return False
        del self._entries[client_id]
        return True

    def drop_node(self, node: str) -> int:
        """``node`` left the cluster: forget its entries; returns how many."""
        gone = [cid for cid, (_, n) in self._entries.items() if n == node]
        for cid in gone:
            del self._entries[cid]
        return len(gone)


# -- session state on the wire (a ``broker.SessionState`` travelling to the claiming node) --

def encode_session_state(state: SessionState, now: float) -> list[Any]:
    """The wire form of a ``SessionState`` (messages as ``forwarding.encode_message``)."""
    expiry = None if state.expiry_interval == float("inf") else state.expiry_interval
    return [
        state.client_id, expiry,
        [list(s) for s in state.subscriptions],
        [[pid, encode_message(m, now), qos, retain, sub_id, released]
         for pid, m, qos, retain, sub_id, released in state.inflight],
        [[encode_message(m, now), qos, retain, sub_id] for m, qos, retain, sub_id in state.queue],
        list(state.awaiting_rel), state.next_packet_id,
    ]


def decode_session_state(fields: Any, now: float) -> SessionState:
    """A ``SessionState`` from its wire form.

    Raises:
        ValueError: malformed.
    """
    if not isinstance(fields, list) or len(fields) != 7:
        raise ValueError("malformed session state")
    cid, expiry, subs, inflight, queue, awaiting, next_pid = fields
    if not isinstance(cid, str) or not isinstance(next_pid, int):
        raise ValueError("malformed session state")
    try:
        return SessionState(
            cid, float("inf") if expiry is None else float(expiry),
            tuple((str(f), int(q), bool(nl), bool(rap), int(rh),
                   None if sid is None else int(sid)) for f, q, nl, rap, rh, sid in subs),
            tuple((int(pid), decode_message(m, now), int(q), bool(r),
                   None if sid is None else int(sid), bool(rel))
                  for pid, m, q, r, sid, rel in inflight),
            tuple((decode_message(m, now), int(q), bool(r), None if sid is None else int(sid))
                  for m, q, r, sid in queue),
            tuple(int(p) for p in awaiting), next_pid,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed session state: {exc}") from None
