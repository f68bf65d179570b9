"""Hypothesis round trips: decode(encode(p)) == p for every packet type, versions 3, 4, 5."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttmesh.protocol import Decoder, encode

from .strategies import client_packets, connects, server_packets

VERSIONS = [3, 4, 5]


@pytest.mark.parametrize("v", VERSIONS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_connect_roundtrip(v: int, data: Any) -> None:
    packet = data.draw(connects(v))
    assert Decoder().feed(encode(packet, v)) == [packet]


@pytest.mark.parametrize("v", VERSIONS)
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_client_packets_roundtrip(v: int, data: Any) -> None:
    connect = data.draw(connects(v))
    packets = data.draw(st.lists(client_packets(v), min_size=1, max_size=5))
    stream = encode(connect, v) + b"".join(encode(p, v) for p in packets)
    # fed in arbitrary chunks
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    d = Decoder()
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got.extend(d.feed(stream[prev:cut]))
        prev = cut
    assert got == [connect, *packets]


@pytest.mark.parametrize("v", VERSIONS)
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_server_packets_roundtrip(v: int, data: Any) -> None:
    packets = data.draw(st.lists(server_packets(v), min_size=1, max_size=5))
    stream = b"".join(encode(p, v) for p in packets)
    assert Decoder("client", protocol_version=v).feed(stream) == packets
