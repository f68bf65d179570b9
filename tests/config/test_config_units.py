"""Durations, sizes, binds, and the node-name port rule (SPEC §3)."""

from __future__ import annotations

import datetime

import pytest

from mqttmesh.config import (
    Bind,
    dist_port,
    name_offset,
    node_name_parts,
    parse_bind,
    parse_duration,
    parse_size,
    rpc_port,
    validate_node_name,
)
from mqttmesh.errors import ConfigError


@pytest.mark.parametrize(("value", "seconds"), [
    ("100ms", 0.1), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0),
    ("1h30m", 5400.0), (15, 15.0), (1.5, 1.5), ("10", 10.0), ("0s", 0.0),
    (datetime.timedelta(minutes=2), 120.0),
])
def test_duration(value: object, seconds: float) -> None:
    assert parse_duration("k", value) == pytest.approx(seconds)


def test_duration_infinity_and_disabled() -> None:
    assert parse_duration("k", "infinity", allow_infinity=True) is None
    assert parse_duration("k", "disabled", allow_disabled=True) is None
    with pytest.raises(ConfigError):
        parse_duration("k", "infinity")


@pytest.mark.parametrize("value", ["-1s", -1, "5 parsecs", "m5", "", True, None, "1h30"])
def test_bad_duration(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration("mqtt.retry_interval", value)
    assert info.value.key == "mqtt.retry_interval" and info.value.value == value


@pytest.mark.parametrize(("value", "size"), [
    ("1MB", 1048576), ("64KB", 65536), ("512", 512), (512, 512), ("1GB", 1024**3),
    ("10b", 10), ("2mb", 2 * 1048576),
])
def test_size(value: object, size: int) -> None:
    assert parse_size("k", value) == size


@pytest.mark.parametrize("value", ["1XB", "-1", -5, "MB", 1.5, False])
def test_bad_size(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_size("k", value)


@pytest.mark.parametrize(("value", "bind"), [
    ("1883", Bind("0.0.0.0", 1883)),
    (1883, Bind("0.0.0.0", 1883)),
    ("0.0.0.0:1883", Bind("0.0.0.0", 1883)),
    ("[::]:1883", Bind("::", 1883)),
    ("[::1]:1884", Bind("::1", 1884)),
    (":1883", Bind("0.0.0.0", 1883)),
    ("127.0.0.1:0", Bind("127.0.0.1", 0)),
    ("broker.example.com:1883", Bind("broker.example.com", 1883)),
])
def test_bind(value: object, bind: Bind) -> None:
    assert parse_bind("k", value) == bind


def test_bind_str() -> None:
    assert str(Bind("::", 1883)) == "[::]:1883"
    assert str(Bind("0.0.0.0", 1883)) == "0.0.0.0:1883"


@pytest.mark.parametrize("value", ["65536", "0.0.0.0:-1", "[::1]", "[nothex]:1", "a b:1", "",
                                   "1.2.3.4:", True])
def test_bad_bind(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_bind("listeners.tcp.default.bind", value)


@pytest.mark.parametrize(("name", "offset"), [
    ("emqx@127.0.0.1", 0), ("emqx1@127.0.0.1", 1), ("emqx-1@127.0.0.1", 1),
    ("emqx12@h.example", 12), ("node-b@10.0.0.2", 0), ("n0@10.0.0.2", 0),
    ("a1b@h.example", 0), ("s1.x2@h.example", 2),
])
def test_name_offset_and_ports(name: str, offset: int) -> None:
    assert name_offset(name) == offset
    assert dist_port(name) == 4370 + offset
    assert rpc_port(name) == 5370 + offset


def test_node_name_parts() -> None:
    assert node_name_parts("emqx@127.0.0.1") == ("emqx", "127.0.0.1")
    with pytest.raises(ConfigError):
        node_name_parts("emqx")


@pytest.mark.parametrize("name", ["emqx@127.0.0.1", "a_b.c-d@node1.example.com", "x@::1",
                                  "x@10.0.0.255", "e9@h.example"])
def test_valid_node_names(name: str) -> None:
    assert validate_node_name(name) == name


@pytest.mark.parametrize("name", ["emqx", "@127.0.0.1", "emqx@", "em qx@127.0.0.1",
                                  "em!qx@127.0.0.1", "emqx@localhost", "emqx@-bad.example",
                                  "emqx@a..b", "emqx@1.2.3", "a@b@127.0.0.1",
                                  "emqx99999@127.0.0.1", 42])
def test_invalid_node_names(name: object) -> None:
    with pytest.raises(ConfigError) as info:
        validate_node_name(name)
    assert info.value.key == "node.name" and info.value.value == name
