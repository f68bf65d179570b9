"""QoS 1 / QoS 2 flows byte by byte against a running node (3.1.1 and 5.0).

The node as receiver: PUBLISH QoS 1 -> PUBACK; QoS 2 -> PUBREC, PUBREL -> PUBCOMP, and a
resent QoS 2 PUBLISH before PUBREL is not delivered twice. The node as sender: PUBLISH to a
QoS 2 subscriber -> PUBREC -> PUBREL -> PUBCOMP. Hand-built bytes, decoded with the
client-role Decoder.
"""

from __future__ import annotations

import pytest

from mqttmesh.protocol.packets import ConnAck, PubAck, PubComp, Publish, PubRec, PubRel, SubAck
from tests.helpers import RawClient
from tests.helpers.clients import unique
from tests.helpers.raw import connect_bytes


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory()


def _publish(topic: str, payload: bytes, qos: int, packet_id: int, version: int,
             dup: bool = False) -> bytes:
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name
    if qos:
        body += packet_id.to_bytes(2, "big")
    if version == 5:
        body += b"\x00"
    body += payload
    return bytes([0x30 | (qos << 1) | (0x08 if dup else 0), len(body)]) + body


def _ack(kind: int, packet_id: int) -> bytes:
    return bytes([kind, 2]) + packet_id.to_bytes(2, "big")


def _subscribe(topic: str, qos: int, version: int) -> bytes:
    name = topic.encode()
    body = b"\x00\x01" + (b"\x00" if version == 5 else b"") + len(name).to_bytes(2, "big")
    body += name + bytes([qos])
    return bytes([0x82, len(body)]) + body


def _client(node, version: int, name: str) -> RawClient:
    raw = RawClient(node.port, version=version)
    raw.send(connect_bytes(unique(name), version=version))
    packet = raw.read_packets(1)[0]
    assert isinstance(packet, ConnAck) and packet.reason_code == 0
    return raw


def _subscriber(node, version: int, topic: str, qos: int) -> RawClient:
    raw = _client(node, version, "sub")
    raw.send(_subscribe(topic, qos, version))
    suback = raw.read_packets(1)[0]
    assert isinstance(suback, SubAck) and suback.reason_codes == (qos,)
    return raw


def test_qos1_publish_is_acked(node, version):
    topic = unique("q1")
    with _subscriber(node, version, topic, 1) as sub, _client(node, version, "pub") as pub:
        pub.send(_publish(topic, b"one", 1, 10, version))
        ack = pub.read_packets(1)[0]
        assert isinstance(ack, PubAck) and ack.packet_id == 10  # [MQTT-4.3.2-4]
        delivered = sub.read_packets(1)[0]
        assert isinstance(delivered, Publish) and delivered.qos == 1
        sub.send(_ack(0x40, delivered.packet_id))


def test_qos2_receiver_flow_and_no_duplicate(node, version):
    # [MQTT-4.3.3-2] receiver: PUBREC, then PUBCOMP for PUBREL; a resent PUBLISH with the same
    # packet id before PUBREL must not be delivered again
    topic = unique("q2in")
    with _subscriber(node, version, topic, 0) as sub, _client(node, version, "pub") as pub:
        pub.send(_publish(topic, b"exactly once", 2, 7, version))
        rec = pub.read_packets(1)[0]
        assert isinstance(rec, PubRec) and rec.packet_id == 7
        pub.send(_publish(topic, b"exactly once", 2, 7, version, dup=True))
        rec_again = pub.read_packets(1)[0]
        assert isinstance(rec_again, PubRec) and rec_again.packet_id == 7
        pub.send(_ack(0x62, 7))  # PUBREL (flags 0010)
        comp = pub.read_packets(1)[0]
        assert isinstance(comp, PubComp) and comp.packet_id == 7
        pub.send(_publish(topic, b"marker", 0, 0, version))
        got = [p.payload for p in sub.read_packets(2)]
        assert got == [b"exactly once", b"marker"]  # once, then the marker


def test_qos2_sender_flow(node, version):
    topic = unique("q2out")
    with _subscriber(node, version, topic, 2) as sub, _client(node, version, "pub") as pub:
        pub.send(_publish(topic, b"to you", 2, 3, version))
        assert isinstance(pub.read_packets(1)[0], PubRec)
        pub.send(_ack(0x62, 3))
        assert isinstance(pub.read_packets(1)[0], PubComp)
        delivered = sub.read_packets(1)[0]
        assert isinstance(delivered, Publish) and delivered.qos == 2
        assert delivered.payload == b"to you"
        sub.send(_ack(0x50, delivered.packet_id))  # PUBREC
        rel = sub.read_packets(1)[0]
        assert isinstance(rel, PubRel) and rel.packet_id == delivered.packet_id  # [MQTT-4.3.3-7]
        sub.send(_ack(0x70, delivered.packet_id))  # PUBCOMP


def test_packet_id_reusable_after_flow(node, version):
    topic = unique("reuse")
    with _subscriber(node, version, topic, 1) as sub, _client(node, version, "pub") as pub:
        for payload in (b"first", b"second"):
            pub.send(_publish(topic, payload, 1, 1, version))  # same packet id each time
            assert isinstance(pub.read_packets(1)[0], PubAck)
            delivered = sub.read_packets(1)[0]
            assert delivered.payload == payload
            sub.send(_ack(0x40, delivered.packet_id))
