"""Message encoding: cached QoS 0 bytes and the split QoS 1/2 cache equal a direct encode."""

from __future__ import annotations

import itertools

from mqttmesh.broker import Message
from mqttmesh.protocol import Decoder, encode_publish
from mqttmesh.protocol.packets import Publish
from mqttmesh.protocol.properties import Properties


def test_split_cache_equals_direct_encoding() -> None:
    props = Properties(content_type="text/plain", user_properties=(("k", "v"),))
    for version, qos, retain, dup, size, pid in itertools.product(
        (3, 4, 5), (1, 2), (False, True), (False, True), (0, 10, 200, 20000), (1, 300, 65535)
    ):
        msg = Message("a/" + "t" * size, b"p" * size, qos, retain, props)
        got = msg.encode(version, qos, retain, dup, pid, None, 0.0)
        again = msg.encode(version, qos, retain, dup, pid, None, 0.0)  # from the cache
        direct = msg._encode(version, qos, retain, dup, pid, None, 0.0)
        assert got == again == direct
        [packet] = Decoder("client", protocol_version=version).feed(got)
        assert isinstance(packet, Publish)
        assert (packet.packet_id, packet.qos, packet.retain, packet.dup) == (pid, qos, retain, dup)
        assert packet.payload == msg.payload


def test_qos0_cache_returns_same_object() -> None:
    msg = Message("t", b"x")
    a = msg.encode_qos0(4, False, 0.0)
    assert msg.encode_qos0(4, False, 0.0) is a
    assert a == encode_publish(b"t", b"x", 0, False, False, None, b"", 4)
    assert msg.encode_qos0(4, True, 0.0) != a


def test_v5_properties_stripped_and_expiry_recomputed() -> None:
    props = Properties(topic_alias=4, subscription_identifiers=(3,), message_expiry_interval=10,
                       response_topic="r")
    msg = Message("t", b"x", 1, False, props, expiry_at=110.0)
    data = msg.encode(5, 1, False, False, 9, 42, 104.5)
    [p] = Decoder("client", protocol_version=5).feed(data)
    assert p.properties.topic_alias is None
    assert p.properties.subscription_identifiers == (42,)
    assert p.properties.message_expiry_interval == 6  # rounded up, never 0
    assert p.properties.response_topic == "r"
