"""Frames: batching, incremental decoding, limits, v1 shapes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttmesh.cluster.wire import FrameDecoder, FrameError, encode_frame, v1

messages = st.lists(st.lists(
    st.one_of(st.integers(-2**40, 2**40), st.text(max_size=20), st.binary(max_size=20),
              st.none(), st.booleans()), max_size=5).map(lambda xs: [1, *xs]), max_size=10)


@given(batches=st.lists(messages, max_size=5), cut=st.integers(1, 50))
def test_round_trip_any_split(batches, cut):
    data = b"".join(encode_frame(b) for b in batches)
    decoder = FrameDecoder(max_frame_size=1 << 20)
    got = []
    for i in range(0, len(data), cut):
        got.extend(decoder.feed(data[i:i + cut]))
    assert got == [m for b in batches for m in b]
    assert decoder.buffered == 0


def test_limit_can_be_raised_between_frames():
    small = encode_frame([[v1.HEARTBEAT]])
    big = encode_frame([[v1.ROUTE_SNAPSHOT, "a@h.x", "e", 1, ["t"] * 5000]])
    decoder = FrameDecoder()
    decoder.receive_data(small + big)
    assert decoder.next_batch() == [[v1.HEARTBEAT]]
    decoder.max_frame_size = 1 << 20
    assert decoder.next_batch()[0][0] == v1.ROUTE_SNAPSHOT


@pytest.mark.parametrize("body", [b"\xc1", b"\x01", b"\x91\x01", b"\x91\x91\xa1x"])
def test_garbage_body_raises(body):
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(len(body).to_bytes(4, "big") + body)


def test_v1_validate_shapes():
    assert v1.validate([v1.HEARTBEAT]) == v1.HEARTBEAT
    assert v1.validate([v1.ROUTE_DELTAS, "a@h.x", "e", 1, [[1, "t"]]]) == v1.ROUTE_DELTAS
    with pytest.raises(FrameError):
        v1.validate([v1.ROUTE_DELTAS, "a@h.x", "e", "1", []])
    with pytest.raises(FrameError):
        v1.validate([99])
    with pytest.raises(FrameError):
        v1.validate([v1.FORWARD_ACK])
