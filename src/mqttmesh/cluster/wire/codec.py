"""Frames between nodes: a 4-byte big-endian length, then one msgpack array of messages.

Theory of operation
-------------------
Every frame carries a *batch*: ``msgpack([msg, msg, ...])`` where each message is an array
whose first element is its type number (``wire.v1``). Batching is what makes the RPC link
cheap: the runtime collects every message produced in one loop iteration and writes one
frame. ``FrameDecoder`` is sans-IO: ``feed(bytes) -> list[message]``. A frame whose header
announces more than ``max_frame_size`` raises at once, before its body is buffered, so a
peer cannot make us hold more than ``max_frame_size + 4`` bytes; before authentication the
runtime uses ``PRE_AUTH_MAX_FRAME`` (4 KiB), so 100 MB of garbage costs a few KB at most.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from mqttmesh.errors import HandshakeError

__all__ = [
    "FrameDecoder",
    "FrameError",
    "encode_frame",
    "PRE_AUTH_MAX_FRAME",
    "MAX_FRAME",
]

PRE_AUTH_MAX_FRAME = 4096
"""Largest frame accepted before the peer has authenticated (bytes)."""
MAX_FRAME = 256 * 1024 * 1024
"""Largest frame accepted from an authenticated peer (a full route snapshot fits)."""

_HEADER = struct.Struct(">I")


class FrameError(HandshakeError):
    """The peer sent something that is not a valid frame (too large, not msgpack)."""


def encode_frame(messages: list[Any] | tuple[Any, ...]) -> bytes:
    """One frame holding a batch of messages."""
    body: bytes = msgpack.packb(list(messages), use_bin_type=True)
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental frame decoder.

    Args:
        max_frame_size: the largest body accepted; raise it with ``max_frame_size = ...``
            once the peer is authenticated.
    """

    __slots__ = ("max_frame_size", "_buf")

    def __init__(self, max_frame_size: int = PRE_AUTH_MAX_FRAME) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes; the limit is checked as soon as a header is complete.

        Raises:
            FrameError: the next frame announces more than ``max_frame_size``.
        """
        self._buf += data
        self._check_header()

    def _check_header(self) -> None:
        buf = self._buf
        if len(buf) >= 4:
            (size,) = _HEADER.unpack_from(buf, 0)
            if size > self.max_frame_size:
                buf.clear()
                raise FrameError(f"frame of {size} bytes exceeds the limit of "
                                 f"{self.max_frame_size}")

    def next_batch(self) -> list[Any] | None:
        """The messages of the next complete frame, or None when more bytes are needed.

        Raises:
            FrameError: a frame too large or a body that is not a batch of messages.
        """
        self._check_header()
        buf = self._buf
        if len(buf) < 4:
            return None
        (size,) = _HEADER.unpack_from(buf, 0)
        if len(buf) - 4 < size:
            return None
        body = bytes(buf[4:4 + size])
        del buf[:4 + size]
        try:
            batch = msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception:  # msgpack raises several unrelated types
            buf.clear()
            raise FrameError("bad frame: not msgpack") from None
        if not isinstance(batch, list) or not all(
            isinstance(m, list) and m and isinstance(m[0], int) for m in batch
        ):
            buf.clear()
            raise FrameError("bad frame: not a batch of messages")
        return batch

    def feed(self, data: bytes) -> list[Any]:
        """``receive_data`` then every complete batch, flattened (same limit for all)."""
        self.receive_data(data)
        out: list[Any] = []
        while (batch := self.next_batch()) is not None:
            out.extend(batch)
        return out
