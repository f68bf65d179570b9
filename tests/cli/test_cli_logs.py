"""Structured logging: text and JSON formatters, log_event, setup_logging."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from mqttmesh.config import load_settings
from mqttmesh.logs import JsonFormatter, TextFormatter, log_event, setup_logging


def record(msg: str, **kv: object) -> logging.LogRecord:
    rec = logging.LogRecord("mqttmesh.test", logging.INFO, __file__, 1, msg, None, None)
    rec.kv = kv
    return rec


def test_text_format() -> None:
    line = TextFormatter().format(record("node started", node="a@127.0.0.1",
                                         listeners="tcp:1883", reason="two words", empty=""))
    assert re.fullmatch(
        r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[info\] node started node=a@127\.0\.0\.1 '
        r'listeners=tcp:1883 reason="two words" empty=""', line), line


def test_json_format() -> None:
    data = json.loads(JsonFormatter().format(record("node started", node="a@127.0.0.1", n=3)))
    assert data["level"] == "info" and data["msg"] == "node started"
    assert data["node"] == "a@127.0.0.1" and data["n"] == 3
    assert data["time"].endswith("Z")


def test_setup_logging_and_log_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={
        "MQTTMESH_LOG__CONSOLE__FORMATTER": "json",
        "MQTTMESH_LOG__CONSOLE__LEVEL": "warning",
        "MQTTMESH_LOG__FILE__ENABLE": "true",
        "MQTTMESH_LOG__FILE__LEVEL": "debug",
    })
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(settings)
        setup_logging(settings)  # idempotent: handlers replaced, not added
        logger = logging.getLogger("mqttmesh.test")
        log_event(logger, "info", "only in the file", k=1)
        log_event(logger, "warning", "everywhere", k=2)
        err_lines = [line for line in capsys.readouterr().err.splitlines() if line]
        assert len(err_lines) == 1 and json.loads(err_lines[0])["k"] == 2
        for handler in root.handlers:
            handler.flush()
        text = Path(settings.log.file.path).read_text()
        assert "only in the file k=1" in text and "everywhere k=2" in text
        assert text.count("everywhere") == 1
    finally:
        for handler in list(root.handlers):
            if handler not in saved[0]:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved[1])
