"""ClientRegistry (Lamport generations) and the session state wire form."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from mqttmesh.broker import Message, SessionState
from mqttmesh.cluster.clients import ClientRegistry, decode_session_state, encode_session_state


def test_claim_is_above_everything_seen_and_ties_break_by_node():
    r = ClientRegistry()
    assert r.observe("c", "b@h", 5)
    assert r.claim("c", "a@h") == 6 and r.owner("c") == "a@h"
    assert r.observe("c", "b@h", 6)  # same generation: the node name breaks the tie
    assert r.get("c") == (6, "b@h")
    assert not r.observe("c", "a@h", 6) and r.newer_than("c", "a@h", 6)


def test_release_only_the_exact_claim():
    r = ClientRegistry()
    g = r.claim("c", "a@h")
    r.observe("c", "b@h", g + 1)
    assert not r.release("c", "a@h", g)  # a late release of the older owner
    assert r.owner("c") == "b@h"
    assert r.release("c", "b@h", g + 1) and r.get("c") is None
    r.observe("d", "b@h", 1)
    assert r.drop_node("b@h") == 1 and len(r) == 0


claims = st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["a", "b", "c"])), max_size=6)


@given(claims)
def test_observe_converges_to_the_highest_claim_in_any_order(cs):
    finals = set()
    for order in itertools.islice(itertools.permutations(cs), 30):
        r = ClientRegistry()
        for gen, node in order:
            r.observe("x", node, gen)
        finals.add(r.get("x"))
    assert finals == {max(cs) if cs else None}


def test_session_state_round_trips():
    m = Message("t/1", b"p", 1, False, sender="s", sender_node="n@h", expiry_at=110.0)
    state = SessionState("cid", float("inf"), (("t/#", 1, False, True, 0, 7),),
                         ((3, m, 1, False, 7, False),), ((m, 1, False, None),), (9,), 4)
    back = decode_session_state(encode_session_state(state, 100.0), 200.0)
    assert back.client_id == "cid" and back.expiry_interval == float("inf")
    assert back.subscriptions == state.subscriptions and back.awaiting_rel == (9,)
    assert back.inflight[0][0] == 3 and back.inflight[0][1].payload == b"p"
    assert back.queue[0][0].expiry_at == 210.0  # remaining ttl travels, not the clock
    assert back.next_packet_id == 4
