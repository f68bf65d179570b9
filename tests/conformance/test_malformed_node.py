"""Replay every malformed-input case of ``malformed_cases.py`` against ONE running node.

Each case (``Case(name, version, hex_in, expected, connack, after_connect)``, written by the
protocol engineer; see its docstring) is sent on its own raw TCP connection. The node must
close the connection within 1 s; after the stream's valid CONNECT it answers CONNACK 0, then
on the bad packet MQTT 5 gets DISCONNECT ``expected`` and 3.x nothing; a bad CONNECT gets
CONNACK ``connack`` (or nothing when None). The
whole table runs once, in parallel sockets, in a module fixture; one test per case then
checks its result (so failures are reported by case name). Afterwards a canary paho client
on the same node must still get its messages and the node process must still be alive
(SPEC §5: bad input affects nothing else).
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass
from typing import Any

import pytest

from mqttmesh.protocol.packets import ConnAck, Disconnect
from tests.helpers import Client, RawClient, RawResult
from tests.helpers.clients import unique

malformed_cases = pytest.importorskip(
    "tests.conformance.malformed_cases", reason="malformed_cases.py has not landed yet"
)

CLOSE_WITHIN = 1.0
"""Every case must end in a close within this many seconds [SPEC §5]."""
WORKERS = "ABCDEFGHIJKLMNOP"
"""One thread per letter; each replaces the cases' client id "c" with its letter, so no two
connections in flight share a client id (a shared id would be a session takeover)."""

CASES = list(malformed_cases.CASES)


@dataclass
class Outcome:
    case: Any
    result: RawResult | None
    error: str | None = None


def _with_client_id(data: bytes, letter: str) -> bytes:
    """Replace the one-byte client id "c" ending the stream's leading CONNECT, if there."""
    if not data or data[0] != 0x10:
        return data
    length, multiplier, i = 0, 1, 1
    while i < len(data) and i <= 4:
        byte = data[i]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        i += 1
        if not byte & 0x80:
            break
    end = i + length
    if end <= len(data) and data[end - 3:end] == b"\x00\x01c":
        return data[:end - 1] + letter.encode() + data[end:]
    return data


def _replay(port: int, case: Any, letter: str) -> Outcome:
    try:
        with RawClient(port, version=case.version, timeout=CLOSE_WITHIN + 1) as raw:
            try:
                raw.send(_with_client_id(case.data, letter))
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while we were still sending: fine, read what came back
            # read a little past the limit so a late close is reported as late, not "open"
            result = raw.read_until_close(timeout=CLOSE_WITHIN + 0.5)
        return Outcome(case, result)
    except Exception as exc:  # connection refused etc.: the node is in trouble
        return Outcome(case, None, f"{type(exc).__name__}: {exc}")


def _replay_chunk(port: int, letter: str, cases: list[Any]) -> list[Outcome]:
    return [_replay(port, case, letter) for case in cases]


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory()


@pytest.fixture(scope="module")
def outcomes(node) -> dict[str, Outcome]:
    """Run the whole table once (parallel sockets) and keep every outcome by case name."""
    started = time.monotonic()
    chunks = [CASES[i::len(WORKERS)] for i in range(len(WORKERS))]
    with concurrent.futures.ThreadPoolExecutor(len(WORKERS)) as pool:
        futures = [
            pool.submit(_replay_chunk, node.port, letter, chunk)
            for letter, chunk in zip(WORKERS, chunks)
        ]
        results = [outcome for future in futures for outcome in future.result()]
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"the malformed table took {elapsed:.1f}s"
    return {outcome.case.name: outcome for outcome in results}


def _describe(packets: list[Any]) -> str:
    return ", ".join(
        f"{type(p).__name__}({getattr(p, 'reason_code', '')!s})" for p in packets
    ) or "nothing"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_case_closes_cleanly(outcomes, case):
    outcome = outcomes[case.name]
    assert outcome.error is None, f"{case.name}: {outcome.error}"
    result = outcome.result
    assert result is not None
    assert result.closed, f"{case.name}: connection still open after {CLOSE_WITHIN + 0.5}s"
    assert result.elapsed <= CLOSE_WITHIN, f"{case.name}: closed after {result.elapsed:.2f}s"
    if result.error is not None and not case.after_connect and result.data[:1] == b"\x20":
        # A CONNECT whose protocol level is unsupported is answered in 3.1.1 format
        # (CONNACK 0x01): the server cannot know the client's version [MQTT-3.1.2-2].
        result = RawClient.decode(result.data, 4)
    assert result.error is None, f"{case.name}: reply does not decode: {result.error}"
    packets = result.packets
    if case.after_connect:
        # valid CONNECT -> CONNACK 0; the bad packet -> (v5) DISCONNECT expected; close
        assert packets and isinstance(packets[0], ConnAck) and packets[0].reason_code == 0, (
            f"{case.name}: the valid CONNECT was not accepted: {_describe(packets)}"
        )
        rest = packets[1:]
        if case.version == 5:
            assert len(rest) == 1 and isinstance(rest[0], Disconnect), (
                f"{case.name}: expected DISCONNECT {case.expected:#04x}, got {_describe(rest)}"
            )
            assert rest[0].reason_code == case.expected, (
                f"{case.name}: expected DISCONNECT {case.expected:#04x}, "
                f"got {rest[0].reason_code:#04x}"
            )
        else:
            assert rest == [], f"{case.name}: 3.x must just close, got {_describe(rest)}"
    elif case.connack is None:
        assert packets == [], f"{case.name}: expected a silent close, got {_describe(packets)}"
    else:
        assert len(packets) == 1 and isinstance(packets[0], ConnAck), (
            f"{case.name}: expected CONNACK {case.connack:#04x}, got {_describe(packets)}"
        )
        assert packets[0].reason_code == case.connack, (
            f"{case.name}: expected CONNACK {case.connack:#04x}, "
            f"got {packets[0].reason_code:#04x}"
        )


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_node_still_serves_after_the_table(node, outcomes, version):
    assert node.alive(), "the node died while replaying malformed input:\n" + node.log_text()
    topic = unique("canary")
    with Client(node.port, version=version) as sub, Client(node.port, version=version) as pub:
        sub.connect()
        pub.connect()
        sub.subscribe(topic, qos=1)
        for i in range(3):
            pub.publish(topic, b"canary %d" % i, qos=1)
        assert [m.payload for m in sub.expect_many(3)] == [b"canary %d" % i for i in range(3)]
    log = node.log_text(tail=None)
    assert "Traceback" not in log, "the node logged a traceback for malformed input"
