"""Shared subscriptions and packet-size limits end to end (node with max_packet_size 16KB)."""

from __future__ import annotations

import time

import pytest

from mqttmesh.protocol.packets import ConnAck, Disconnect
from tests.helpers import RawClient
from tests.helpers.raw import connect_bytes

MAX_PACKET = 16 * 1024


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory(config=f"mqtt.max_packet_size = {MAX_PACKET}\n")


@pytest.mark.parametrize("prefix", ["$share/grp/", "$queue/"])
def test_shared_subscription_delivers_each_message_once(mqtt, version, topic, prefix):
    members = [mqtt() for _ in range(3)]
    for member in members:
        assert member.subscribe(prefix + topic, qos=1) == [1]
    pub = mqtt()
    for i in range(30):
        pub.publish(topic, str(i).encode(), qos=1)
    received: list[int] = []
    deadline = time.monotonic() + 5
    while len(received) < 30 and time.monotonic() < deadline:
        for member in members:
            received += [int(m.payload) for m in member.drain()]
        time.sleep(0.01)  # polling three queues against a deadline
    assert sorted(received) == list(range(30))  # each exactly once across the group
    for member in members:
        member.expect_none(0.1)


def test_shared_and_normal_subscription_both_get_it(mqtt, version, topic):
    shared = mqtt()
    shared.subscribe("$share/g2/" + topic, qos=1)
    normal = mqtt()
    normal.subscribe(topic, qos=1)
    mqtt().publish(topic, b"both", qos=1)
    assert shared.expect().payload == b"both"
    assert normal.expect().payload == b"both"


def test_oversized_publish_closes_connection(node, version):
    # MQTT 5 §3.1.2.11.4 / §4.13: a packet above the server's Maximum Packet Size:
    # DISCONNECT 0x95 (Packet too large) and close; 3.1.1: close
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"big-{version}", version=version))
        connack = raw.read_packets(1)[0]
        assert isinstance(connack, ConnAck)
        if version == 5:
            assert connack.properties.maximum_packet_size == MAX_PACKET
        payload = b"p" * (MAX_PACKET + 10)
        body = b"\x00\x01t" + (b"\x00" if version == 5 else b"") + payload
        length = len(body)
        header = bytearray([0x30])
        while True:
            digit, length = length % 128, length // 128
            header.append(digit | (0x80 if length else 0))
            if not length:
                break
        try:
            raw.send(bytes(header) + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        result = raw.read_until_close(timeout=2.0)
    assert result.closed
    if version == 5 and result.packets:
        assert isinstance(result.packets[0], Disconnect)
        assert result.packets[0].reason_code == 0x95


@pytest.mark.parametrize("version", [5], ids=["v5"])
def test_message_larger_than_client_maximum_not_sent(mqtt, version, topic):
    # [MQTT-3.1.2-25] the server must not send packets above the client's Maximum Packet Size
    small = mqtt(connect_properties={"MaximumPacketSize": 1024})
    small.subscribe(topic, qos=1)
    pub = mqtt()
    pub.publish(topic, b"x" * 4096, qos=1)
    pub.publish(topic, b"fits", qos=1)
    assert small.expect().payload == b"fits"
    assert small.is_connected
