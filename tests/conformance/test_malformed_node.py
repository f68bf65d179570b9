"""Replay every malformed-input case of ``malformed_cases.py`` against ONE running node.

Each case (``Case(name, version, hex_in, expected)``, written by the protocol engineer) is
sent on its own raw TCP connection; the node must close the connection within 1 s, and for
MQTT 5 first send the expected DISCONNECT (or CONNACK, for a bad CONNECT) reason code. The
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
from tests.helpers.raw import hexbytes

malformed_cases = pytest.importorskip(
    "tests.conformance.malformed_cases", reason="malformed_cases.py has not landed yet"
)

CLOSE_WITHIN = 1.0
"""Every case must end in a close within this many seconds [SPEC §5]."""
PARALLEL = 16


def _cases() -> list[Any]:
    for name in ("CASES", "MALFORMED_CASES", "cases"):
        table = getattr(malformed_cases, name, None)
        if table is not None:
            return list(table)
    raise AssertionError("malformed_cases.py exports no CASES table")


CASES = _cases()


@dataclass
class Outcome:
    case: Any
    result: RawResult | None
    error: str | None = None


def _hex_in(case: Any) -> bytes:
    data = case.hex_in
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return hexbytes(data)


def _replay(port: int, case: Any) -> Outcome:
    try:
        with RawClient(port, version=case.version, timeout=CLOSE_WITHIN + 1) as raw:
            try:
                raw.send(_hex_in(case))
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while we were still sending: fine, read what came back
            # read a little past the limit so a late close is reported as late, not "open"
            result = raw.read_until_close(timeout=CLOSE_WITHIN + 0.5)
        return Outcome(case, result)
    except Exception as exc:  # connection refused etc.: the node is in trouble
        return Outcome(case, None, f"{type(exc).__name__}: {exc}")


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory()


@pytest.fixture(scope="module")
def outcomes(node) -> dict[str, Outcome]:
    """Run the whole table once (parallel sockets) and keep every outcome by case name."""
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda case: _replay(node.port, case), CASES))
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"the malformed table took {elapsed:.1f}s"
    return {outcome.case.name: outcome for outcome in results}


def _expected_code(expected: Any) -> int | None:
    """The reason code a case expects, from the shapes the table may use."""
    if expected is None or isinstance(expected, bool):
        return None
    if isinstance(expected, int):
        return expected
    for attr in ("reason_code", "code", "value"):
        value = getattr(expected, attr, None)
        if isinstance(value, int):
            return value
    if isinstance(expected, tuple):
        for item in expected:
            if isinstance(item, int) and not isinstance(item, bool):
                return item
    if isinstance(expected, str):
        for token in expected.replace(":", " ").replace("=", " ").split():
            try:
                return int(token, 0)
            except ValueError:
                continue
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_case_closes_cleanly(outcomes, case):
    outcome = outcomes[case.name]
    assert outcome.error is None, f"{case.name}: {outcome.error}"
    result = outcome.result
    assert result is not None
    assert result.closed, f"{case.name}: connection still open after {CLOSE_WITHIN + 0.5}s"
    assert result.elapsed <= CLOSE_WITHIN, f"{case.name}: closed after {result.elapsed:.2f}s"
    code = _expected_code(case.expected)
    if case.version == 5 and code is not None and code >= 0x80:
        assert result.error is None, f"{case.name}: reply does not decode: {result.error}"
        replies = [p for p in result.packets if isinstance(p, (Disconnect, ConnAck))]
        assert replies, f"{case.name}: no DISCONNECT/CONNACK before close: {result.packets}"
        last = replies[-1]
        assert last.reason_code == code, (
            f"{case.name}: expected reason {code:#04x}, got "
            f"{type(last).__name__} {last.reason_code:#04x}"
        )
    # a malformed packet never gets a successful CONNACK as its last word
    for packet in result.packets:
        if isinstance(packet, Disconnect):
            assert packet.reason_code >= 0x80 or case.version != 5


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
