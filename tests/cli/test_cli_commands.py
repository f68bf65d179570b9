"""CLI without a running node: argument handling, config errors, ctl dispatch, no-node paths."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from mqttmesh.cli import main


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("MQTTMESH_", "EMQX_")):
            monkeypatch.delenv(key)


def conf(tmp_path: Path, text: str = "") -> str:
    path = tmp_path / "n.conf"
    path.write_text(f'node.name = "t1@127.0.0.1"\nnode.data_dir = "{tmp_path}/data"\n{text}')
    return str(path)


def test_ping_without_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "-c", conf(tmp_path)]) == 1
    assert "Node t1@127.0.0.1 not responding to pings." in capsys.readouterr().err


def test_global_options_before_the_command(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", conf(tmp_path), "--node", "z9@10.0.0.9", "ping"]) == 1
    assert "Node z9@10.0.0.9 not responding" in capsys.readouterr().err


def test_node_option_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MQTTMESH_NODE__NAME", "env@10.0.0.1")
    assert main(["ping", "-c", conf(tmp_path)]) == 1
    assert "env@10.0.0.1" in capsys.readouterr().err
    assert main(["ping", "-c", conf(tmp_path), "--node", "opt@10.0.0.2"]) == 1
    assert "opt@10.0.0.2" in capsys.readouterr().err


def test_stale_pid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = conf(tmp_path)
    (tmp_path / "data").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "data" / "mqttmesh.pid").write_text(f"{dead.pid}\n")
    assert main(["ping", "-c", path]) == 1
    assert main(["stop", "-c", path]) == 1
    assert "not running" in capsys.readouterr().err
    assert not (tmp_path / "data" / "mqttmesh.pid").exists()


def test_stop_without_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stop", "-c", conf(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "t1@127.0.0.1 is not running" in err


@pytest.mark.parametrize("command", ["foreground", "start", "stop", "ping"])
def test_config_error_exits_1(tmp_path: Path, command: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    path = conf(tmp_path, "mqtt.max_qos_allowed = 9\n")
    assert main([command, "-c", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mqttmesh: ")
    assert "mqtt.max_qos_allowed" in err and "9" in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "-c", str(tmp_path / "nope.conf")]) == 1
    assert "nope.conf" in capsys.readouterr().err


def test_bad_env_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EMQX_NODE_NAME", "nohost")
    assert main(["ping"]) == 1
    assert "node.name" in capsys.readouterr().err


def test_ctl_not_available(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "mqttmesh.cli.ctl", None)  # as if the module did not exist
    assert main(["ctl", "cluster", "status"]) == 2
    assert "ctl: not available yet" in capsys.readouterr().err


def test_ctl_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_main(argv: list[str], load: object) -> int:
        seen["argv"] = argv
        seen["settings"] = load(None)  # type: ignore[operator]
        return 7

    module = types.ModuleType("mqttmesh.cli.ctl")
    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mqttmesh.cli.ctl", module)
    path = conf(tmp_path)
    rc = main(["ctl", "cluster", "join", "b@127.0.0.2", "-c", path, "--node", "c3@127.0.0.3",
               "--json"])
    assert rc == 7
    assert seen["argv"] == ["cluster", "join", "b@127.0.0.2", "--json"]
    settings = seen["settings"]
    assert settings.node.name == "c3@127.0.0.3"  # type: ignore[attr-defined]
    assert settings.node.data_dir == str(tmp_path / "data")  # type: ignore[attr-defined]
    rc = main(["-c", path, "ctl", "cluster", "status"])
    assert seen["argv"] == ["cluster", "status"]
    assert seen["settings"].node.name == "t1@127.0.0.1"  # type: ignore[attr-defined]


def test_python_dash_m_help() -> None:
    out = subprocess.run([sys.executable, "-m", "mqttmesh", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    for command in ("foreground", "start", "stop", "ping", "ctl"):
        assert command in out.stdout


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
