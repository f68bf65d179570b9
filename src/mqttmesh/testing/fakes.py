"""Fakes for sans-IO tests: a clock you move by hand and outlets that record what is written."""

from __future__ import annotations

from mqttmesh.protocol import Decoder
from mqttmesh.protocol.packets import Packet

__all__ = ["CountingOutlet", "FakeClock", "RecordingOutlet"]


class FakeClock:
    """Monotonic time under test control: `clock()` / `clock.now` read it, `advance` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class RecordingOutlet:
    """An Outlet that keeps every write; decode them as a client would with `packets()`.

    Args:
        protocol_version: the version the client side speaks (3, 4 or 5), for decoding.
    """

    def __init__(self, protocol_version: int = 4, max_packet_size: int = 1 << 28) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol_version = protocol_version
        self._decoder = Decoder(
            "client", max_packet_size=max_packet_size, protocol_version=protocol_version
        )
        self._read = 0

    def write(self, data: bytes) -> None:
        if self.closed:
            raise AssertionError("write after close")
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)

    def packets(self) -> list[Packet]:
        """Packets written since the last call, decoded in client role."""
        new = self.writes[self._read:]
        self._read = len(self.writes)
        out: list[Packet] = []
        for chunk in new:
            out.extend(self._decoder.feed(chunk))
        return out


class CountingOutlet:
    """An Outlet that only counts writes and bytes (for benchmarks)."""

    __slots__ = ("count", "nbytes", "closed")

    def __init__(self) -> None:
        self.count = 0
        self.nbytes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.count += 1
        self.nbytes += len(data)

    def close(self) -> None:
        self.closed = True
