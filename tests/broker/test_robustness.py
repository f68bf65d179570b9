"""Robustness: garbage never escapes a Channel; QoS 1 is never lost across reconnects."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mqttmesh.broker import Broker, BrokerConfig
from mqttmesh.protocol.packets import PubAck, Publish
from mqttmesh.protocol.properties import Properties
from mqttmesh.testing import BrokerClient, FakeClock


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from([3, 4, 5]), chunks=st.lists(st.binary(max_size=64), max_size=6))
def test_garbage_after_connect_never_escapes(version: int, chunks: list[bytes]) -> None:
    clock = FakeClock()
    broker = Broker(BrokerConfig())
    c = BrokerClient(broker, clock, version)
    c.connect("fuzz")
    c.subscribe("#")
    for chunk in chunks:
        c.send_raw(chunk)  # SPEC §5: the client gets the protocol's error, nothing escapes
    broker.tick(clock.now + 1000)
    other = BrokerClient(broker, clock, 4)
    assert other.connect("other", keep_alive=0).reason_code == 0  # the node keeps running


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_garbage_before_connect_never_escapes(data: bytes) -> None:
    clock = FakeClock()
    broker = Broker(BrokerConfig())
    c = BrokerClient(broker, clock, 4)
    c.send_raw(data)
    broker.tick(clock.now + 100)
    assert broker.statistics().channels in (0, 1)


def test_qos1_never_lost_across_random_reconnects() -> None:
    """[MQTT-4.3.2] at least once, in order [MQTT-4.6.0-6], across takeover / reconnects."""
    rng = random.Random(42)
    clock = FakeClock()
    broker = Broker(BrokerConfig(max_inflight=4, max_mqueue_len=0))
    props = Properties(session_expiry_interval=3600)
    pub = BrokerClient(broker, clock, 5)
    pub.connect("pub", keep_alive=0)
    sub = BrokerClient(broker, clock, 5)
    sub.connect("sub", clean_start=False, keep_alive=0, properties=props)
    sub.subscribe("t", qos=1)
    sent: list[bytes] = []
    got: list[bytes] = []
    pending: list[Publish] = []
    for step in range(2000):
        action = rng.random()
        if action < 0.4:
            payload = b"%d" % len(sent)
            sent.append(payload)
            pub.publish("t", payload, qos=1)
        elif action < 0.8:
            pending += sub.publishes()
            if pending:
                p = pending.pop(0)
                if not got or got[-1] != p.payload:
                    got.append(p.payload)
                sub.send(PubAck(p.packet_id))
        elif action < 0.85:
            if rng.random() < 0.5:
                sub.channel.handle_closed(clock.now)
            sub = BrokerClient(broker, clock, 5)  # reconnect (takeover if still connected)
            assert sub.connect("sub", clean_start=False, keep_alive=0,
                               properties=props).session_present
            pending = []
        clock.advance(0.01)
    for _ in range(len(sent) + 10):
        pending += sub.publishes()
        if not pending:
            break
        p = pending.pop(0)
        if not got or got[-1] != p.payload:
            got.append(p.payload)
        sub.send(PubAck(p.packet_id))
    # every message arrived; duplicates only as redeliveries of unacknowledged ones
    assert [g for i, g in enumerate(got) if g not in got[:i]] == sent
