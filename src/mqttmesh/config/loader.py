"""`load_settings`: HOCON file + environment overrides -> validated, frozen `Settings`.

Precedence, lowest first: built-in defaults (`DEFAULTS`, `LISTENER_DEFAULTS`), the HOCON
file, `EMQX_NODE_NAME`-style old variables, `EMQX_A__B`, `MQTTMESH_NODE_NAME`-style,
`MQTTMESH_A__B`. Environment values are read as HOCON values (lists, numbers, booleans,
quoted strings); anything else is taken as a bare string.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping
from typing import Any

from pyhocon import ConfigFactory, ConfigTree  # type: ignore[import-untyped]

from mqttmesh.config.build import build_settings
from mqttmesh.config.defaults import DEFAULT_CONFIG_PATH, ENV_ROOTS, NODE_KEYS
from mqttmesh.config.settings import Settings
from mqttmesh.errors import ConfigError

__all__ = ["load_settings", "parse_env_value", "env_overrides"]

_SCALAR = re.compile(r"^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)$")


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load the node's settings.

    Args:
        path: HOCON file. None: `etc/mqttmesh.conf` (relative to the working directory)
            if it exists, else built-in defaults only.
        env: environment (default `os.environ`) for `MQTTMESH_`/`EMQX_` overrides.

    Raises:
        ConfigError: the file cannot be read or parsed, or a value is invalid; the
            message names the key and the value.
    """
    if env is None:
        env = os.environ
    config_file: str | None = None
    if path is None:
        if os.path.isfile(DEFAULT_CONFIG_PATH):
            config_file = os.path.abspath(DEFAULT_CONFIG_PATH)
    else:
        if not os.path.isfile(path):
            raise ConfigError("config file", path, "no such file")
        config_file = os.path.abspath(path)
    tree: dict[str, Any] = _read_file(config_file) if config_file else {}
    for key_path, value in env_overrides(env):
        _put(tree, key_path, value)
    return build_settings(tree, config_file)


def _read_file(path: str) -> dict[str, Any]:
    try:
        conf = ConfigFactory.parse_file(path)
        return _plain(conf)  # type: ignore[no-any-return]
    except ConfigError:
        raise
    except Exception as exc:  # pyhocon/pyparsing raise many unrelated types
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "'@'" in reason:
            reason += ' (quote values that contain @: node.name = "a@127.0.0.1")'
        raise ConfigError("config file", path, f"cannot parse: {reason}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigTree):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _put(tree: dict[str, Any], key_path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in key_path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[key_path[-1]] = value


def env_overrides(env: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any]]:
    """The overrides found in `env`, in increasing precedence, as (path, value).

    Only variables whose first level is a known root (`node`, `cluster`, `mqtt`,
    `listeners`, `dashboard`, `log`, `sys_topics`) count; others are ignored.
    """
    found: list[tuple[int, str, tuple[str, ...], Any]] = []
    for name, raw in env.items():
        for rank, prefix in ((0, "EMQX_"), (2, "MQTTMESH_")):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "__" in rest:
                parts = tuple(p.lower() for p in rest.split("__"))
                if parts[0] in ENV_ROOTS and all(parts):
                    found.append((rank + 1, name, parts, parse_env_value(raw)))
            elif rest.startswith("NODE_") and rest[5:].lower() in NODE_KEYS:
                found.append((rank, name, ("node", rest[5:].lower()), parse_env_value(raw)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(path, value) for _, _, path, value in found]


def parse_env_value(raw: str) -> Any:
    """Read an environment value as a HOCON value, else as a bare string.

    `[a@h1,b@h2]` -> `["a@h1", "b@h2"]`, `42` -> 42, `true` -> True, `"x"` -> "x",
    `30s` -> "30s", `0.0.0.0:1883` -> "0.0.0.0:1883".
    """
    text = raw.strip()
    if not text:
        return raw
    if text[0] in '[{"' or _SCALAR.match(text):
        try:
            value = _plain(ConfigFactory.parse_string("v = " + text)["v"])
            if isinstance(value, datetime.timedelta):
                return text
            return value
        except Exception:  # not valid HOCON: fall back below
            pass
        if text.startswith("[") and text.endswith("]"):
            items = [item.strip().strip('"').strip("'") for item in text[1:-1].split(",")]
            return [item for item in items if item]
    return raw

