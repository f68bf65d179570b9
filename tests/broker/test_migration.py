"""Session migration between nodes: export / import, CONNECT waiting for its session."""

from __future__ import annotations

import random

from mqttmesh.broker import Broker, BrokerConfig
from mqttmesh.protocol.packets import ConnAck, Connect, Disconnect, PingReq, PingResp, PubRec, PubRel
from mqttmesh.protocol.properties import Properties
from mqttmesh.testing import BrokerClient

from .conftest import RecordingHooks, tick


class FetchingHooks(RecordingHooks):
    """Says every non-clean CONNECT's session lives on another node."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, bool]] = []

    def session_connecting(self, client_id: str, clean_start: bool) -> bool:
        self.asked.append((client_id, clean_start))
        return not clean_start


PROPS = Properties(session_expiry_interval=300)


def nodes(clock):
    a_hooks, b_hooks = RecordingHooks(), FetchingHooks()
    a = Broker(BrokerConfig(node_name="a@h", max_inflight=2), a_hooks, rng=random.Random(1))
    b = Broker(BrokerConfig(node_name="b@h", max_inflight=2), b_hooks, rng=random.Random(1))
    return a, a_hooks, b, b_hooks


def test_session_follows_client_to_another_node(clock) -> None:
    a, a_hooks, b, b_hooks = nodes(clock)
    old = BrokerClient(a, clock, 5)
    old.connect("c", clean_start=False, properties=PROPS)
    old.subscribe("t/+", qos=2)
    pub = BrokerClient(a, clock, 5)
    pub.connect("pub")
    for i in range(4):
        pub.publish("t/x", b"%d" % i, qos=2)
    first, second = old.publishes()  # window of 2; 2 more queued
    old.send(PubRec(second.packet_id))
    assert old.take(PubRel)
    new = BrokerClient(b, clock, 5)
    new.send(Connect("c", 5, clean_start=False, properties=PROPS), PingReq())
    assert new.received() == []  # waiting for the session; the PINGREQ waits too
    assert b_hooks.asked == [("c", False)]
    state = a.export_session("c", clock.now)
    assert old.take(Disconnect).reason_code == 0x8E  # [MQTT-3.1.4-3]
    assert a.sessions.get("c") is None and ("removed", "t/+") in a_hooks.events
    assert state is not None and len(state.inflight) == 2 and len(state.queue) == 2
    b.import_session(state, clock.now)
    ack = new.take(ConnAck)
    assert ack.session_present  # [MQTT-3.2.2-2]
    resent = new.publishes()
    assert (resent[0].packet_id, resent[0].dup) == (first.packet_id, True)  # [MQTT-4.4.0-1]
    assert new.take(PubRel).packet_id == second.packet_id
    assert new.take(PingResp) == PingResp()
    assert b_hooks.events == [("added", "t/+")]
    pub_b = BrokerClient(b, clock, 5)
    pub_b.connect("pub_b")
    pub_b.publish("t/y", b"on b")
    assert [p.payload for p in new.publishes()] == [b"on b"]


def test_waiting_connect_times_out_to_a_new_session(clock) -> None:
    _, _, b, _ = nodes(clock)
    c = BrokerClient(b, clock, 4)
    c.send(Connect("c", 4, clean_start=False))
    assert c.received() == []
    tick(b, clock, 6)
    assert c.take(ConnAck) == ConnAck(False, 0)


def test_session_unavailable_starts_fresh(clock) -> None:
    _, _, b, _ = nodes(clock)
    c = BrokerClient(b, clock, 5)
    c.send(Connect("c", 5, clean_start=False))
    b.session_unavailable("c", clock.now)
    assert not c.take(ConnAck).session_present


def test_import_without_waiting_connect_then_expires(clock) -> None:
    a, _, b, _ = nodes(clock)
    old = BrokerClient(a, clock, 4)
    old.connect("c", clean_start=False)
    old.subscribe("t")
    state = a.export_session("c", clock.now)
    assert old.closed and old.received() == []  # 3.1.1: just closed
    b.import_session(state, clock.now)
    assert b.sessions.get("c") is not None
    tick(b, clock, 7201)
    assert b.sessions.get("c") is None  # expires on its new node


def test_discard_session_and_clean_start_not_fetched(clock) -> None:
    a, _, b, b_hooks = nodes(clock)
    old = BrokerClient(a, clock, 5)
    old.connect("c", clean_start=False, properties=PROPS)
    new = BrokerClient(b, clock, 5)
    assert new.connect("c", clean_start=True).reason_code == 0  # not fetched
    assert b_hooks.asked == [("c", True)]
    assert a.discard_session("c", clock.now)
    assert old.take(Disconnect).reason_code == 0x8E
    assert a.sessions.get("c") is None


def test_export_session_with_expiry_zero_is_none(clock) -> None:
    a, _, _, _ = nodes(clock)
    c = BrokerClient(a, clock, 5)
    c.connect("c")
    assert a.export_session("c", clock.now) is None
    assert c.closed
