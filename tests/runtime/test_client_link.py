"""client_link: batched writes, close-after-flush, QoS 0 drop when the write buffer is full."""

from __future__ import annotations

import asyncio

import pytest

from mqttmesh.runtime.client_link import ClientLink, FlushScheduler
from mqttmesh.runtime.listeners import Listener, ListenerSpec


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []
        self.closed = False
        self.aborted = False
        self.limits = None
        self.buffered = 0

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 4242) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None):
        self.limits = (high, low)

    def writelines(self, data):
        self.writes.append(list(data))

    def get_write_buffer_size(self):
        return self.buffered

    def write(self, data):
        self.writes.append([data])

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


class FakeChannel:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.closed_calls = 0

    def handle_data(self, data, now):
        self.data.append(data)

    def handle_closed(self, now):
        self.closed_calls += 1


class FakeBroker:
    def __init__(self) -> None:
        self.channels: list[FakeChannel] = []

    def open_channel(self, outlet, peer, listener, now):
        channel = FakeChannel()
        self.channels.append(channel)
        return channel


@pytest.fixture
def setup():
    loop = asyncio.new_event_loop()
    scheduler = FlushScheduler(loop)
    broker = FakeBroker()
    listener = Listener(ListenerSpec("tcp", "default", "127.0.0.1", 0, max_connections=2),
                        broker, loop, scheduler)
    yield loop, scheduler, broker, listener
    loop.close()


def _link(listener):
    link = ClientLink(listener)
    transport = FakeTransport()
    link.connection_made(transport)
    return link, transport


def _run_once(loop):
    loop.run_until_complete(asyncio.sleep(0))


def test_writes_batched_once_per_iteration(setup):
    loop, scheduler, broker, listener = setup
    a, ta = _link(listener)
    b, tb = _link(listener)
    a.write(b"1")
    a.write(b"2")
    b.write(b"3")
    assert ta.writes == [] and tb.writes == []
    _run_once(loop)
    assert ta.writes == [[b"1", b"2"]]
    assert tb.writes == [[b"3"]]
    assert ta.limits is not None


def test_close_flushes_then_closes(setup):
    loop, scheduler, broker, listener = setup
    link, transport = _link(listener)
    link.write(b"last words")
    link.close()
    assert transport.writes == [[b"last words"]]
    assert transport.closed
    link.write(b"after close")
    _run_once(loop)
    assert transport.writes == [[b"last words"]]


def test_connection_lost_closes_channel_once(setup):
    loop, scheduler, broker, listener = setup
    link, transport = _link(listener)
    link.connection_lost(None)
    link.connection_lost(None)
    assert broker.channels[0].closed_calls == 1
    assert link not in listener.links


def test_congested_link_drops_qos0_publish_only(setup):
    loop, scheduler, broker, listener = setup
    link, transport = _link(listener)
    link.pause_writing()
    link.write(b"\x30\x03\x00\x01a")  # QoS 0 PUBLISH: dropped
    link.write(b"\x31\x03\x00\x01a")  # QoS 0 retained PUBLISH: dropped
    link.write(b"\x32\x05\x00\x01a\x00\x01")  # QoS 1 PUBLISH: kept
    link.write(b"\x40\x02\x00\x01")  # PUBACK: kept
    _run_once(loop)
    assert transport.writes == [[b"\x32\x05\x00\x01a\x00\x01", b"\x40\x02\x00\x01"]]
    assert scheduler.dropped_qos0 == 2
    link.resume_writing()
    link.write(b"\x30\x03\x00\x01a")
    _run_once(loop)
    assert transport.writes[-1] == [b"\x30\x03\x00\x01a"]


def test_max_connections_refuses_extra(setup):
    loop, scheduler, broker, listener = setup
    _link(listener)
    _link(listener)
    link, transport = _link(listener)
    assert transport.aborted
    assert listener.refused == 1
    assert len(broker.channels) == 2


def test_data_goes_to_channel(setup):
    loop, scheduler, broker, listener = setup
    link, transport = _link(listener)
    link.data_received(b"\x10\x00")
    assert link.eof_received() is False
    assert broker.channels[0].data == [b"\x10\x00", b""]


def test_idle_link_is_small(setup):
    # __slots__ everywhere: no per-connection __dict__
    loop, scheduler, broker, listener = setup
    link, transport = _link(listener)
    assert not hasattr(link, "__dict__")


def test_pending_bytes_count_towards_congestion(setup):
    # a fast publisher can queue megabytes in one loop iteration, before any flush
    from mqttmesh.runtime.client_link import WRITE_HIGH_WATER

    loop, scheduler, broker, listener = setup
    link, transport = _link(listener)
    big = b"\x30\x7f" + b"x" * (1024 * 1024)
    for _ in range(WRITE_HIGH_WATER // len(big) + 3):
        link.write(big)
    assert scheduler.dropped_qos0 >= 1
    link.write(b"\x40\x02\x00\x01")  # acks still go through
    _run_once(loop)
    assert transport.writes[-1][-1] == b"\x40\x02\x00\x01"


def test_transport_buffer_after_flush_counts(setup):
    loop, scheduler, broker, listener = setup
    link, transport = _link(listener)
    transport.buffered = 9 * 1024 * 1024  # the kernel did not take it
    link.write(b"\x32\x05\x00\x01a\x00\x01")
    _run_once(loop)
    link.write(b"\x30\x03\x00\x01a")
    assert scheduler.dropped_qos0 == 1
    link.resume_writing()  # drained below the low-water mark
    link.write(b"\x30\x03\x00\x01a")
    assert scheduler.dropped_qos0 == 1
