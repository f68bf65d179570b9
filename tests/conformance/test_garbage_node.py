"""Random and truncated input against one running node: every connection ends (closed by the
node or still waiting for more bytes), the node never crashes and keeps serving (SPEC §5).

Seeded, so a failure is reproducible: the stream that broke it is in the assertion message.
"""

from __future__ import annotations

import concurrent.futures
import random
import socket

import pytest

from tests.helpers import Client, RawClient
from tests.helpers.clients import unique
from tests.helpers.raw import connect_bytes

SEED = 20261123
STREAMS = 300


def _streams() -> list[bytes]:
    rng = random.Random(SEED)
    out = []
    for i in range(STREAMS):
        version = rng.choice((3, 4, 5))
        head = connect_bytes(f"g{i}", version=version) if rng.random() < 0.7 else b""
        kind = rng.random()
        if kind < 0.4:  # pure noise
            tail = rng.randbytes(rng.randrange(1, 300))
        elif kind < 0.7:  # a plausible fixed header with a random body
            tail = bytes([rng.randrange(0, 256), rng.randrange(0, 128)]) + rng.randbytes(
                rng.randrange(0, 200))
        else:  # a valid CONNECT, cut or with flipped bits
            valid = bytearray(connect_bytes(f"x{i}", version=version, keepalive=rng.randrange(0, 5)))
            for _ in range(rng.randrange(1, 4)):
                valid[rng.randrange(len(valid))] ^= 1 << rng.randrange(8)
            tail = bytes(valid[: rng.randrange(1, len(valid) + 1)])
        out.append(head + tail)
    return out


STREAM_DATA = _streams()


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory(config="mqtt.idle_timeout = 2s\n")


def _send(port: int, data: bytes) -> str | None:
    try:
        with RawClient(port, timeout=5) as raw:
            try:
                raw.send(data)
            except (BrokenPipeError, ConnectionResetError):
                return None
            raw.sock.shutdown(socket.SHUT_WR)  # EOF: the node must close its side too
            result = raw.read_until_close(timeout=4.0)
            if not result.closed:
                return f"still open 4 s after EOF: {data.hex()}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc} on {data.hex()}"
    return None


def test_garbage_never_hurts_the_node(node):
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        problems = [p for p in pool.map(lambda d: _send(node.port, d), STREAM_DATA) if p]
    assert not problems, "\n".join(problems[:5])
    assert node.alive(), node.log_text()
    topic = unique("after-garbage")
    with Client(node.port, version=5) as sub, Client(node.port) as pub:
        sub.connect()
        pub.connect()
        sub.subscribe(topic, qos=1)
        pub.publish(topic, b"still here", qos=1)
        assert sub.expect().payload == b"still here"
    assert "Traceback" not in node.log_text(tail=None)
