"""Structured logging: a person's sentence, then key=value pairs (or one JSON object a line).

Use `log_event` everywhere::

    log_event(logger, "info", "node started", node="a@127.0.0.1", listeners="tcp:1883")
    # 2026-11-23T20:01:02.123Z [info] node started node=a@127.0.0.1 listeners=tcp:1883

Plain `logger.info(...)` works too; pairs passed as `extra={"kv": {...}}` are printed the
same way. `setup_logging(settings)` installs the handlers from `log.console.*`/`log.file.*`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqttmesh.config import Settings

__all__ = ["setup_logging", "log_event", "TextFormatter", "JsonFormatter", "level_number"]

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": NOTICE,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}
_HANDLER_MARK = "_mqttmesh_handler"


def level_number(level: int | str) -> int:
    """`"info"` -> logging.INFO; ints pass through. EMQX's level names are accepted."""
    if isinstance(level, int):
        return level
    return _LEVELS[level.lower()]


def log_event(logger: logging.Logger, level: int | str, msg: str, **kv: Any) -> None:
    """Log `msg` with structured key=value pairs.

    Args:
        logger: usually `logging.getLogger(__name__)`.
        level: "debug" | "info" | "notice" | "warning" | "error" | "critical", or an int.
        msg: what happened, in a person's words (no values interpolated).
        **kv: the values: `node=..., peer=..., reason=...`.
    """
    number = level_number(level)
    if logger.isEnabledFor(number):
        logger.log(number, msg, extra={"kv": kv}, stacklevel=2)


def _timestamp(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    millis = int((record.created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _pairs(record: logging.LogRecord) -> dict[str, Any]:
    kv = getattr(record, "kv", None)
    return kv if isinstance(kv, dict) else {}


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """`2026-11-23T20:01:02.123Z [info] node started node=a@127.0.0.1 listeners=tcp:1883`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"[{record.levelname.lower()}]", record.getMessage()]
        parts.extend(f"{key}={_text_value(value)}" for key, value in _pairs(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, msg, logger, then the pairs."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        for key, value in _pairs(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _formatter(name: str) -> logging.Formatter:
    return JsonFormatter() if name == "json" else TextFormatter()


def setup_logging(settings: Settings) -> None:
    """Install console (stderr) and file handlers on the root logger per `settings.log`.

    Calling it again replaces the handlers it installed before.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    levels: list[int] = []
    console = settings.log.console
    if console.enable:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(level_number(console.level))
        stream.setFormatter(_formatter(console.formatter))
        setattr(stream, _HANDLER_MARK, True)
        root.addHandler(stream)
        levels.append(stream.level)
    file = settings.log.file
    if file.enable:
        os.makedirs(os.path.dirname(file.path) or ".", exist_ok=True)
        handler = logging.FileHandler(file.path, encoding="utf-8")
        handler.setLevel(level_number(file.level))
        handler.setFormatter(_formatter(file.formatter))
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
        levels.append(handler.level)
    root.setLevel(min(levels) if levels else logging.CRITICAL + 1)
