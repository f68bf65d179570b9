"""MqttConnection pairs exchanging bytes, h11 style (no sockets, no event loop)."""

from __future__ import annotations

import pytest

from mqttmesh.errors import LocalProtocolError, RemoteProtocolError
from mqttmesh.protocol import (
    NEED_DATA, ConnAck, Connect, MqttConnection, PingReq, PingResp, Publish, SubAck, Subscribe,
    Subscription,
)


def _drain(conn: MqttConnection) -> list[object]:
    out = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
    return out


@pytest.mark.parametrize("v", [3, 4, 5])
def test_pair_exchange(v: int) -> None:
    client, server = MqttConnection("client"), MqttConnection("server")
    connect = Connect("me", v, "MQIsdp" if v == 3 else "MQTT")
    server.receive_data(client.send(connect))
    assert _drain(server) == [connect]
    assert server.protocol_version == v
    client.receive_data(server.send(ConnAck(False, 0)))
    assert _drain(client) == [ConnAck(False, 0)]
    sub = Subscribe(1, (Subscription("a/#", 1),))
    pub = Publish("a/b", b"hi", 1, packet_id=2)
    server.receive_data(client.send(sub) + client.send(pub) + client.send(PingReq()))
    assert _drain(server) == [sub, pub, PingReq()]
    client.receive_data(server.send(SubAck(1, (1,))) + server.send(PingResp()))
    assert _drain(client) == [SubAck(1, (1,)), PingResp()]


def test_role_checks_on_send() -> None:
    with pytest.raises(LocalProtocolError):
        MqttConnection("client").send(ConnAck())
    with pytest.raises(LocalProtocolError):
        MqttConnection("server", protocol_version=4).send(Connect("x"))
    with pytest.raises(LocalProtocolError):
        MqttConnection("server").send(PingResp())  # version unknown before CONNECT


def test_eof_mid_packet() -> None:
    server = MqttConnection("server")
    server.receive_data(MqttConnection("client").send(Connect("x"))[:5])
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_valid_packets_come_before_the_error() -> None:
    server = MqttConnection("server")
    server.receive_data(MqttConnection("client").send(Connect("x")) + b"\xc0\x00\x00\x00")
    assert server.next_event() == Connect("x")
    assert server.next_event() == PingReq()
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_clean_eof() -> None:
    server = MqttConnection("server")
    server.receive_data(b"")
    assert server.their_eof
    assert server.next_event() is NEED_DATA
