"""Value conversions for config: durations, sizes, booleans, `infinity`, binds."""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
from dataclasses import dataclass

from mqttmesh.errors import ConfigError

__all__ = [
    "Bind",
    "parse_bind",
    "parse_bool",
    "parse_duration",
    "parse_size",
    "parse_int",
    "parse_float",
    "parse_enum",
    "parse_str",
    "parse_str_list",
    "is_infinity",
]

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_SIZE = re.compile(r"^(\d+)\s*(b|kb|mb|gb|tb|k|m|g|t)?$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "b": 1,
    "k": 1024, "kb": 1024,
    "m": 1024**2, "mb": 1024**2,
    "g": 1024**3, "gb": 1024**3,
    "t": 1024**4, "tb": 1024**4,
}
_INFINITY_WORDS = ("infinity", "unlimited")


def is_infinity(value: object) -> bool:
    """True for the words meaning "no limit" (`infinity`)."""
    return isinstance(value, str) and value.strip().lower() in _INFINITY_WORDS


def parse_duration(key: str, value: object, *, allow_infinity: bool = False,
                   allow_disabled: bool = False) -> float | None:
    """Parse a duration into float seconds.

    Accepts `100ms`, `30s`, `5m`, `1h`, `2d`, `1w`, compounds like `1h30m`, and plain
    numbers, which are **seconds** (EMQX reads some plain integers as milliseconds; we
    don't). `infinity` (or `disabled`) maps to None where the key allows it.

    Raises:
        ConfigError: unparsable or negative.
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ConfigError(key, value, "expected a duration such as 30s, 5m, 1h")
    elif isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ConfigError(key, value, "expected a finite duration")
    elif isinstance(value, str):
        text = value.strip().lower()
        if allow_infinity and text in _INFINITY_WORDS:
            return None
        if allow_disabled and text in ("disabled", "disable", "false", "off"):
            return None
        seconds = _parse_duration_text(key, value, text)
    else:
        raise ConfigError(key, value, "expected a duration such as 30s, 5m, 1h")
    if seconds < 0:
        raise ConfigError(key, value, "a duration cannot be negative")
    return seconds


def _parse_duration_text(key: str, value: str, text: str) -> float:
    if text.startswith("-"):
        raise ConfigError(key, value, "a duration cannot be negative")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos = 0
    total = 0.0
    compact = text.replace(" ", "")
    for match in _DURATION_PART.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or pos != len(compact):
        raise ConfigError(key, value, "expected a duration such as 100ms, 30s, 5m, 1h, 2d")
    return total


def parse_size(key: str, value: object, *, allow_infinity: bool = False) -> int | None:
    """Parse a byte size (`1MB`, `64KB`, `512`, units are powers of 1024) into int bytes.

    `infinity` maps to None where allowed.
    """
    if isinstance(value, bool):
        raise ConfigError(key, value, "expected a size such as 64KB or 1MB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if allow_infinity and is_infinity(text):
            return None
        if text.startswith("-"):
            raise ConfigError(key, value, "a size cannot be negative")
        match = _SIZE.match(text)
        if not match:
            raise ConfigError(key, value, "expected a size such as 64KB or 1MB")
        unit = match.group(2).lower() if match.group(2) else None
        size = int(match.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ConfigError(key, value, "expected a size such as 64KB or 1MB")
    if size < 0:
        raise ConfigError(key, value, "a size cannot be negative")
    return size


def parse_bool(key: str, value: object) -> bool:
    """`true`/`false` (also `on`/`off`, `yes`/`no`)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "on", "yes"):
            return True
        if text in ("false", "off", "no"):
            return False
    raise ConfigError(key, value, "expected true or false")


def parse_int(key: str, value: object, *, minimum: int | None = None,
              maximum: int | None = None, allow_infinity: bool = False) -> int | None:
    """An integer within [minimum, maximum]; `infinity` -> None where allowed."""
    if allow_infinity and is_infinity(value):
        return None
    number: int
    if isinstance(value, bool):
        raise ConfigError(key, value, "expected an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        number = int(value)
    else:
        raise ConfigError(key, value, "expected an integer"
                          + (" or infinity" if allow_infinity else ""))
    if minimum is not None and number < minimum:
        raise ConfigError(key, value, f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(key, value, f"must be at most {maximum}")
    return number


def parse_float(key: str, value: object, *, minimum: float | None = None) -> float:
    """A number (int or float) no smaller than minimum."""
    if isinstance(value, bool):
        raise ConfigError(key, value, "expected a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(key, value, "expected a number") from None
    if not math.isfinite(number):
        raise ConfigError(key, value, "expected a finite number")
    if minimum is not None and number < minimum:
        raise ConfigError(key, value, f"must be at least {minimum}")
    return number


def parse_enum(key: str, value: object, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive); returned lower-case."""
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise ConfigError(key, value, "expected one of " + ", ".join(choices))


def parse_str(key: str, value: object) -> str:
    """A string; numbers are accepted and turned into their text."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(key, value, "expected a string")


def parse_str_list(key: str, value: object) -> tuple[str, ...]:
    """A list of strings; a comma-separated string is accepted too."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
        return tuple(item for item in items if item)
    if isinstance(value, (list, tuple)):
        return tuple(parse_str(key, item).strip() for item in value)
    raise ConfigError(key, value, "expected a list such as [\"a\", \"b\"]")


@dataclass(frozen=True, slots=True)
class Bind:
    """A listener's address. host "0.0.0.0" / "::" = every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(key: str, value: object, default_host: str = "0.0.0.0") -> Bind:
    """Parse `1883`, `0.0.0.0:1883`, `[::]:1883`, `:1883` or `host.example:1883`.

    Port 0 is accepted (the OS picks a free port; useful in tests).
    """
    if isinstance(value, bool):
        raise ConfigError(key, value, "expected a port or host:port")
    if isinstance(value, int):
        host, port_text = default_host, str(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            end = text.find("]")
            if end < 0 or not text[end + 1:].startswith(":"):
                raise ConfigError(key, value, "expected [ipv6]:port")
            host, port_text = text[1:end], text[end + 2:]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ConfigError(key, value, "not an IPv6 address in brackets") from None
        elif ":" in text:
            host, _, port_text = text.rpartition(":")
            if ":" in host:
                raise ConfigError(key, value, "write IPv6 addresses in brackets: [::1]:1883")
            host = host or default_host
            if not _valid_host(host):
                raise ConfigError(key, value, "not an IP address or host name")
        else:
            host, port_text = default_host, text
    else:
        raise ConfigError(key, value, "expected a port or host:port")
    if not port_text.isdigit():
        raise ConfigError(key, value, "the port is not a number")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(key, value, "port out of range 0..65535")
    return Bind(host, port)


_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return len(host) <= 253 and all(_LABEL.match(label) for label in host.split("."))
