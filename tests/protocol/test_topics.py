"""Topic names, filters, shared subscriptions and matching, on the spec's examples (MQTT 5 §4.7)."""

from __future__ import annotations

import pytest

from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol import matches, parse_share, validate_topic_filter, validate_topic_name

MATCH = [
    # §4.7.1.2 multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),  # [MQTT-4.7.1-2] '#' includes the parent level
    ("#", "sport/tennis", True),
    ("#", "/", True),
    # §4.7.1.3 single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+/tennis/#", "sport/tennis/x/y", True),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("+", "", True),
    # §4.7.2 topics beginning with $ [MQTT-4.7.2-1]
    ("#", "$SYS/monitor/Clients", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("+", "$SYS", False),
    # §4.7.3 case sensitive, exact levels
    ("ACCOUNTS", "Accounts", False),
    ("Accounts payable", "Accounts payable", True),
    ("/", "/", True),
    ("a/b", "a/b/", False),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH)
def test_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


def test_deep_topic_does_not_recurse() -> None:
    topic = "/" * 65535
    assert matches("#", topic)
    assert matches("/" * 65534 + "#", topic)
    assert matches("+/" * 65535 + "+", topic)
    assert not matches("+", topic)


@pytest.mark.parametrize("f", ["#", "+", "+/tennis/#", "sport/+/player1", "sport/tennis/#",
                               "/", "a//b", "$SYS/#", "$share/g/a/+", "$queue/a/#", "+/+/+"])
def test_valid_filters(f: str) -> None:
    validate_topic_filter(f)


@pytest.mark.parametrize("f", ["", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a/#/b",
                               "##", "a/++", "+a", "#/", "a\x00b", "$share/g", "$share//a",
                               "$share/g+/a", "$share/g#/a", "$share/g/", "$queue/", "$share"])
def test_invalid_filters(f: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        validate_topic_filter(f)  # [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1] [MQTT-4.8.2-1]
    assert info.value.reason_code == 0x8F


def test_filter_level_limit() -> None:
    validate_topic_filter("a/" * 127 + "a")
    with pytest.raises(RemoteProtocolError):
        validate_topic_filter("a/" * 128 + "a")
    validate_topic_filter("a/" * 200 + "a", max_levels=1000)


@pytest.mark.parametrize("t", ["a", "/", "sport/tennis", "$SYS/x", " ", "a//b"])
def test_valid_names(t: str) -> None:
    validate_topic_name(t)


@pytest.mark.parametrize("t", ["", "a/+", "#", "a\x00", "é" * 40000])
def test_invalid_names(t: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        validate_topic_name(t)  # [MQTT-4.7.3-1] [MQTT-3.3.2-2] [MQTT-4.7.3-2] [MQTT-4.7.3-3]
    assert info.value.reason_code == 0x90


@pytest.mark.parametrize(("f", "expected"), [
    ("$share/g/a/b", ("g", "a/b")),
    ("$share/group1/#", ("group1", "#")),
    ("$share/g//", ("g", "/")),
    ("$queue/a/+", ("$queue", "a/+")),
    ("a/b", (None, "a/b")),
    ("$SYS/x", (None, "$SYS/x")),
    ("$shared/x", (None, "$shared/x")),
])
def test_parse_share(f: str, expected: tuple[str | None, str]) -> None:
    assert parse_share(f) == expected
