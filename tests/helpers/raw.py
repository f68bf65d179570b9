"""A raw-socket MQTT client: send exact bytes, read until the server closes, decode replies.

Decoding uses ``mqttmesh.protocol``'s client-role ``Decoder`` (the broker's own codec, but in
the other role); bytes that do not decode are kept in ``RawResult.undecoded``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RawClient", "RawResult", "hexbytes", "connect_bytes"]


def hexbytes(text: str) -> bytes:
    """``"10 0c 00 04 4d 51 54 54"`` (spaces, newlines, ``|`` allowed) -> bytes."""
    return bytes.fromhex("".join(ch for ch in text if ch not in " \n\t|_:"))


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    data = s.encode()
    return len(data).to_bytes(2, "big") + data


def connect_bytes(client_id: str, version: int = 4, keepalive: int = 60, clean: bool = True,
                  will: tuple[str, bytes, int, bool] | None = None,
                  properties: bytes = b"", will_properties: bytes = b"") -> bytes:
    """Hand-built CONNECT (no codec involved): will = (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    payload = _utf8(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += _remaining_length(len(will_properties)) + will_properties
        payload += _utf8(topic) + len(message).to_bytes(2, "big") + message
    name = b"MQIsdp" if version == 3 else b"MQTT"
    var = len(name).to_bytes(2, "big") + name + bytes([version, flags])
    var += keepalive.to_bytes(2, "big")
    if version == 5:
        var += _remaining_length(len(properties)) + properties
    body = var + payload
    return b"\x10" + _remaining_length(len(body)) + body


@dataclass
class RawResult:
    packets: list[Any] = field(default_factory=list)
    closed: bool = False
    elapsed: float = 0.0
    data: bytes = b""
    undecoded: bytes = b""
    error: str | None = None


class RawClient:
    """One TCP connection speaking raw bytes."""

    def __init__(self, port: int, host: str = "127.0.0.1", version: int | None = None,
                 timeout: float = 5.0, rcvbuf: int | None = None) -> None:
        self.version = version
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:  # a small receive buffer must be set before connecting to limit the window
            self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = hexbytes(data)
        self.sock.sendall(data)

    def read_until_close(self, timeout: float = 1.0) -> RawResult:
        """Read until EOF / reset or the deadline; ``closed`` says whether the server closed."""
        start = time.monotonic()
        deadline = start + timeout
        chunks = [self._buffer]
        self._buffer = b""
        closed = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError, OSError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        result = RawResult(closed=closed, elapsed=time.monotonic() - start, data=data)
        self._decode(data, result)
        return result

    def read_packets(self, count: int, timeout: float = 2.0) -> list[Any]:
        """Read until ``count`` packets decoded (or raise at the deadline / on close)."""
        deadline = time.monotonic() + timeout
        data = self._buffer
        while True:
            result = RawResult()
            self._decode(data, result)
            if len(result.packets) >= count:
                self._buffer = b""
                return result.packets
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(result.packets)}/{count} packets: {result.packets}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"closed after {len(result.packets)}/{count}: {result.packets}")
            data += chunk

    @staticmethod
    def decode(data: bytes, version: int | None) -> RawResult:
        """Decode bytes a server sent, as a client of ``version`` would."""
        result = RawResult(closed=True, data=data)
        RawClient._decode_into(data, version, result)
        return result

    def _decode(self, data: bytes, result: RawResult) -> None:
        self._decode_into(data, self.version, result)

    @staticmethod
    def _decode_into(data: bytes, version: int | None, result: RawResult) -> None:
        if not data:
            return
        from mqttmesh.protocol import Decoder

        kwargs: dict[str, Any] = {"role": "client"}
        if version is not None:
            kwargs["protocol_version"] = version
        try:
            decoder = Decoder(**kwargs)
            result.packets.extend(decoder.feed(data))
        except Exception as exc:  # report, do not hide: tests assert on packets
            result.error = f"{type(exc).__name__}: {exc}"
            result.undecoded = data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
