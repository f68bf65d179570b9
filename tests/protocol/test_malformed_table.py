"""Every case of tests/conformance/malformed_cases.py against the Decoder (server role)."""

from __future__ import annotations

import pytest

from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol import Connect, Decoder
from tests.conformance.malformed_cases import CASES, Case


def test_table_is_large_and_unique() -> None:
    assert len(CASES) >= 400
    assert len({c.name for c in CASES}) == len(CASES)


def _decode_error(data: bytes, chunk: int) -> tuple[RemoteProtocolError, list[object]]:
    decoder = Decoder()
    decoded: list[object] = []
    with pytest.raises(RemoteProtocolError) as info:
        for i in range(0, len(data), chunk):
            decoded.extend(decoder.feed(data[i:i + chunk]))
    exc = info.value
    decoded.extend(getattr(exc, "packets", []))
    return exc, decoded


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case) -> None:
    data = case.data
    exc, decoded = _decode_error(data, len(data))
    assert exc.reason_code == case.expected, str(exc)
    if case.after_connect:
        # the valid CONNECT went through, only the bad packet failed
        assert len(decoded) == 1 and isinstance(decoded[0], Connect)
        assert decoded[0].protocol_version == case.version
    else:
        assert decoded == []
        assert getattr(exc, "connack_code", None) == case.connack, str(exc)
    # the same stream byte by byte fails the same way
    exc2, decoded2 = _decode_error(data, 1)
    assert exc2.reason_code == case.expected
    assert decoded2 == decoded
