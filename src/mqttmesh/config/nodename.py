"""Node names (`name@host`) and the port rule derived from them (SPEC §3)."""

from __future__ import annotations

import ipaddress
import re

from mqttmesh.errors import ConfigError

__all__ = [
    "DIST_BASE_PORT",
    "RPC_BASE_PORT",
    "validate_node_name",
    "node_name_parts",
    "node_host",
    "name_offset",
    "dist_port",
    "rpc_port",
]

DIST_BASE_PORT = 4370
RPC_BASE_PORT = 5370

_NAME_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SUFFIX = re.compile(r"(\d+)$")


def node_name_parts(name: str) -> tuple[str, str]:
    """Split `name@host` into `(name, host)`.

    Raises:
        ConfigError: not of the form `name@host` (key `node.name`).
    """
    part, sep, host = name.partition("@")
    if not sep or not part or not host:
        raise ConfigError("node.name", name, "expected name@host")
    return part, host


def node_host(name: str) -> str:
    """The host part of a node name (an IP or an FQDN)."""
    return node_name_parts(name)[1]


def validate_node_name(name: object, key: str = "node.name") -> str:
    """Check `name@host`: name part `[A-Za-z0-9_.-]+`, host an IP address or an FQDN.

    A single-label host such as `localhost` is refused, as Erlang long names do: use
    `127.0.0.1`. Returns the name unchanged.

    Raises:
        ConfigError: naming `key` and the value.
    """
    if not isinstance(name, str):
        raise ConfigError(key, name, "expected a node name such as mqttmesh@127.0.0.1")
    part, sep, host = name.partition("@")
    if not sep or not part or not host:
        raise ConfigError(key, name, "expected name@host, e.g. mqttmesh@127.0.0.1")
    if not _NAME_PART.match(part):
        raise ConfigError(key, name, "the name part may only contain letters, digits, _ . -")
    if host.startswith("[") and host.endswith("]"):
        raise ConfigError(key, name, "write an IPv6 host without brackets, as Erlang does: "
                          f"{part}@{host[1:-1]}")
    if not _is_ip(host):
        labels = host.split(".")
        if len(labels) < 2 or len(host) > 253 or not all(_LABEL.match(x) for x in labels) \
                or labels[-1].isdigit():
            raise ConfigError(key, name, "the host must be an IP address or a fully "
                              "qualified domain name (use 127.0.0.1 rather than localhost)")
    if RPC_BASE_PORT + name_offset(name) > 65535:
        raise ConfigError(key, name, "the numeric suffix gives ports above 65535")
    return name


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def name_offset(name: str) -> int:
    """The numeric suffix of the name part: `emqx@h` -> 0, `emqx1@h` / `emqx-1@h` -> 1."""
    part = name.partition("@")[0]
    match = _SUFFIX.search(part)
    return int(match.group(1)) if match else 0


def dist_port(name: str) -> int:
    """Cluster link ("distribution") port of a node: 4370 + offset."""
    return DIST_BASE_PORT + name_offset(name)


def rpc_port(name: str) -> int:
    """Cluster RPC (message forwarding) port of a node: 5370 + offset."""
    return RPC_BASE_PORT + name_offset(name)
