"""CONNECT / CONNACK end to end: client id rules, authentication, first-packet rules."""

from __future__ import annotations

import pytest

from mqttmesh.protocol.packets import ConnAck, Disconnect, PingResp
from tests.helpers import RawClient
from tests.helpers.raw import connect_bytes


def test_connect_accepted(mqtt, version):
    client = mqtt()
    assert client.connack is not None
    assert client.connack[0] == 0
    assert client.session_present is False  # [MQTT-3.2.2-1] clean start -> no session


def test_empty_client_id_with_clean_start_is_assigned(mqtt, version):
    # [MQTT-3.1.3-6] a zero-length id with clean session is accepted (and v5 gets one assigned)
    client = mqtt(client_id="")
    assert client.connack[0] == 0
    if version == 5:
        assigned = getattr(client.connack_properties, "AssignedClientIdentifier", None)
        assert assigned, "v5: the server must assign a client id [MQTT-3.2.2-16]"


def test_v311_empty_client_id_without_clean_session_refused(node):
    # [MQTT-3.1.3-8] CONNACK 0x02 (identifier rejected) then close
    with RawClient(node.port, version=4) as raw:
        raw.send(connect_bytes("", version=4, clean=False))
        result = raw.read_until_close(timeout=2.0)
    assert result.closed
    assert result.packets and isinstance(result.packets[0], ConnAck)
    assert result.packets[0].reason_code == 0x02


def test_username_and_password_accepted(mqtt, version):
    # No authentication configured: anonymous and any credentials are allowed (EMQX default).
    client = mqtt(username="alice", password="secret")
    assert client.connack[0] == 0


def test_mqtt_31_connect_accepted(node):
    with RawClient(node.port, version=3) as raw:
        raw.send(connect_bytes("old-client-31", version=3))
        packets = raw.read_packets(1)
    assert isinstance(packets[0], ConnAck) and packets[0].reason_code == 0


def test_first_packet_must_be_connect(node):
    # [MQTT-3.1.0-1] PINGREQ before CONNECT: the server closes the connection
    with RawClient(node.port) as raw:
        raw.send("c0 00")
        result = raw.read_until_close(timeout=2.0)
    assert result.closed
    assert not any(isinstance(p, ConnAck) and p.reason_code == 0 for p in result.packets)


def test_second_connect_is_a_protocol_error(node, version):
    # [MQTT-3.1.0-2] a second CONNECT is a protocol violation: disconnect
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes("twice-" + str(version), version=version))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        raw.send(connect_bytes("twice-" + str(version), version=version))
        result = raw.read_until_close(timeout=2.0)
    assert result.closed
    if version == 5 and result.packets:
        assert isinstance(result.packets[0], Disconnect)
        assert result.packets[0].reason_code == 0x82  # Protocol Error


def test_unsupported_protocol_level_refused(node):
    # [MQTT-3.1.2-2] unsupported level: CONNACK 0x01 (3.1.1) / 0x84 (5.0) or just close
    body = b"\x00\x04MQTT\x09\x02\x00\x3c\x00\x03abc"
    with RawClient(node.port, version=4) as raw:
        raw.send(b"\x10" + bytes([len(body)]) + body)
        result = raw.read_until_close(timeout=2.0)
    assert result.closed
    for packet in result.packets:
        assert isinstance(packet, ConnAck) and packet.reason_code in (0x01, 0x84)


def test_pingreq_answered(node, version):
    # [MQTT-3.12.4-1] the server answers PINGREQ with PINGRESP
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"pinger-{version}", version=version))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        raw.send("c0 00")
        assert isinstance(raw.read_packets(1)[0], PingResp)


@pytest.mark.parametrize("version", [5], ids=["v5"])
def test_connack_v5_announces_limits(mqtt, version):
    client = mqtt()
    props = client.connack_properties
    # the broker's maximum packet size (default 1 MB) and topic alias maximum are announced
    assert getattr(props, "MaximumPacketSize", None) in (None, 1024 * 1024)
    assert getattr(props, "TopicAliasMaximum", 0) > 0


def test_packets_pipelined_with_connect(node, version):
    # [MQTT-3.1.4] a client may send packets right after CONNECT, before CONNACK: one write
    from mqttmesh.protocol.packets import SubAck

    name = b"pipelined/" + str(version).encode()
    subscribe_body = b"\x00\x05" + (b"\x00" if version == 5 else b"") + \
        len(name).to_bytes(2, "big") + name + b"\x01"
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"pipelined-{version}", version=version)
                 + b"\x82" + bytes([len(subscribe_body)]) + subscribe_body + b"\xc0\x00")
        packets = raw.read_packets(3)
    assert isinstance(packets[0], ConnAck) and packets[0].reason_code == 0
    assert isinstance(packets[1], SubAck) and packets[1].reason_codes == (1,)
    assert isinstance(packets[2], PingResp)
