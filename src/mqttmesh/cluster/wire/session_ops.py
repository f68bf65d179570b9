"""Session takeover operations: carried in v1 ``REQUEST`` / ``REPLY`` (types 7 / 8).

No v1 message type changes meaning (STYLE rule 11): these are new *operation names* of the
existing ``REQUEST [7, request_id, op, {args}]``; a node that does not know them answers
``REPLY [8, id, false, "unknown operation ..."]``, which the claiming node treats as "no
session there". ``request_id`` 0 = one-way (no ``REPLY`` is sent).

    session.takeover  {client_id, gen, clean}   "I (the sender) claim client_id with
                      generation gen: hand me its session (clean: discard it)"
                      -> REPLY {state: session_state | None}
    session.deliver   {client_id, m, qos, retain, sub_id}   one-way: a message that reached
                      the old owner during a takeover, for the session it handed over
    session.done      {client_id}                one-way: "every running member routes the
                      session's filters to me now": the old owner stops handing off
    session.release   {client_id, gen}           one-way: the session ended on the sender
    session.claims    {client_id: "", claims: [[client_id, gen]...]}   one-way, sent on every
                      link (re)start: the claims of the clients connected on the sender (a
                      partition may have let a client id connect on both sides; the lower
                      claim's node kicks its connection with 0x8E)

session_state = [client_id, expiry | None, [subscription...], [inflight...], [queued...],
                 [awaiting_rel packet id...], next_packet_id]   (``cluster.clients``)
"""

from __future__ import annotations

__all__ = ["TAKEOVER", "DELIVER", "DONE", "RELEASE", "CLAIMS", "PREFIX", "ONE_WAY"]

PREFIX = "session."
TAKEOVER = "session.takeover"
DELIVER = "session.deliver"
DONE = "session.done"
RELEASE = "session.release"
CLAIMS = "session.claims"
ONE_WAY = 0
