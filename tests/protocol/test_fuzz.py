"""Arbitrary or mutated bytes, fed in arbitrary chunks, raise nothing but RemoteProtocolError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol import Connect, Decoder, MqttConnection, NEED_DATA, encode

from .strategies import client_packets, server_packets

CONNECT = {v: encode(Connect("fuzz", v, "MQIsdp" if v == 3 else "MQTT"), v) for v in (3, 4, 5)}


def _feed_chunks(decoder: Decoder, stream: bytes, cuts: list[int]) -> None:
    prev = 0
    try:
        for cut in [*sorted(cuts), len(stream)]:
            decoder.feed(stream[prev:cut])
            prev = cut
    except RemoteProtocolError as exc:
        assert 0 < exc.reason_code < 256
        # every error comes from an explicit check, not from the decoder's safety net
        assert not str(exc).startswith("malformed packet ("), str(exc)
        with pytest.raises(RemoteProtocolError):  # a dead decoder stays dead
            decoder.feed(b"\xc0\x00")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=5))
def test_arbitrary_bytes_server(stream: bytes, cuts: list[int]) -> None:
    _feed_chunks(Decoder(), stream, cuts)


@pytest.mark.parametrize("v", [3, 4, 5])
@settings(max_examples=400, deadline=None)
@given(stream=st.binary(max_size=200), cuts=st.lists(st.integers(0, 250), max_size=5))
def test_arbitrary_bytes_after_connect(v: int, stream: bytes, cuts: list[int]) -> None:
    _feed_chunks(Decoder(), CONNECT[v] + stream, cuts)
    _feed_chunks(Decoder("client", protocol_version=v), stream, cuts)


@pytest.mark.parametrize("v", [3, 4, 5])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_packets(v: int, data: Any) -> None:
    """Valid packets with bytes overwritten, inserted or cut hit the deep error paths."""
    client = data.draw(st.booleans())
    packet = data.draw(server_packets(v) if client else client_packets(v))
    raw = bytearray(encode(packet, v))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if op == "insert" or i == len(raw):
            raw.insert(i, data.draw(st.integers(0, 255)))
        elif op == "set":
            raw[i] = data.draw(st.integers(0, 255))
        else:
            del raw[i]
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=4))
    if client:
        _feed_chunks(Decoder("client", protocol_version=v), bytes(raw), cuts)
    else:
        _feed_chunks(Decoder(), CONNECT[v] + bytes(raw), cuts)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_connection_never_raises_other_errors(stream: bytes) -> None:
    conn = MqttConnection("server")
    conn.receive_data(CONNECT[5] + stream)
    conn.receive_data(b"")
    try:
        while conn.next_event() is not NEED_DATA:
            pass
    except RemoteProtocolError:
        pass


def test_deep_remaining_length_and_huge_topic() -> None:
    """Pathological sizes: a 65,535-level topic, 50,000 user properties."""
    from mqttmesh.protocol import Properties, Publish, matches
    topic = "/" * 65535
    assert matches("#", topic)
    assert not matches("+", topic)
    props = Properties(user_properties=tuple((str(i), "v") for i in range(50_000)))
    raw = encode(Publish("a", b"", properties=props), 5)
    (got,) = Decoder(protocol_version=5).feed(raw)
    assert len(got.properties.user_properties) == 50_000
