"""File + environment: precedence, env syntax, HOCON includes and substitutions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttmesh.config import load_settings, parse_env_value


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_file_values(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", """
node {
  name = "a@127.0.0.1"
  cookie = "secret"
  data_dir = "/var/lib/a"
}
mqtt.max_packet_size = 64KB
mqtt.retry_interval = 100ms
mqtt.max_subscriptions = 10
mqtt.server_keepalive = 30
cluster.discovery_strategy = static
cluster.static.seeds = ["a@127.0.0.1", "b@127.0.0.2"]
cluster.autoclean = 5m
listeners.tcp.default.bind = 1884
listeners.tcp.second.bind = "127.0.0.1:1885"
listeners.ws.default.websocket.mqtt_path = "/ws"
listeners.ssl.default.enable = false
log.console.formatter = json
""")
    s = load_settings(conf, env={})
    assert s.node.name == "a@127.0.0.1" and s.node.cookie == "secret"
    assert s.node.data_dir == "/var/lib/a"
    assert not any("node.cookie" in w for w in s.warnings)
    assert s.mqtt.max_packet_size == 65536
    assert s.mqtt.retry_interval == pytest.approx(0.1)
    assert s.mqtt.max_subscriptions == 10
    assert s.mqtt.server_keepalive == 30
    assert s.cluster.discovery_strategy == "static"
    assert s.cluster.static.seeds == ("a@127.0.0.1", "b@127.0.0.2")
    assert s.cluster.autoclean == 300.0
    tcp, second = s.listener("tcp"), s.listener("tcp", "second")
    assert tcp is not None and (tcp.bind.host, tcp.bind.port) == ("0.0.0.0", 1884)
    assert second is not None and (second.bind.host, second.bind.port) == ("127.0.0.1", 1885)
    assert second.enable and second.id == "tcp:second"
    ws = s.listener("ws")
    assert ws is not None and ws.websocket is not None and ws.websocket.mqtt_path == "/ws"
    ssl = s.listener("ssl")
    assert ssl is not None and not ssl.enable
    assert not any("ssl:default skipped" in w for w in s.warnings)
    assert s.log.console.formatter == "json"


def test_env_beats_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", 'node.name = "a@127.0.0.1"\nmqtt.max_inflight = 10\n')
    s = load_settings(conf, env={"MQTTMESH_NODE__NAME": "b@127.0.0.2"})
    assert s.node.name == "b@127.0.0.2"
    assert s.mqtt.max_inflight == 10


def test_env_prefixes_and_precedence() -> None:
    assert load_settings(env={"EMQX_NODE__NAME": "e@127.0.0.1"}).node.name == "e@127.0.0.1"
    assert load_settings(env={"EMQX_NODE_NAME": "o@127.0.0.1"}).node.name == "o@127.0.0.1"
    assert load_settings(env={"EMQX_NODE_COOKIE": "c00kie"}).node.cookie == "c00kie"
    env = {
        "EMQX_NODE_NAME": "old@127.0.0.1",
        "EMQX_NODE__NAME": "emqx@127.0.0.1",
        "MQTTMESH_NODE__NAME": "mesh@127.0.0.1",
    }
    assert load_settings(env=env).node.name == "mesh@127.0.0.1"
    del env["MQTTMESH_NODE__NAME"]
    assert load_settings(env=env).node.name == "emqx@127.0.0.1"


def test_env_value_types() -> None:
    s = load_settings(env={
        "MQTTMESH_CLUSTER__STATIC__SEEDS": "[a@h1.example,b@h2.example]",
        "MQTTMESH_MQTT__MAX_INFLIGHT": "64",
        "MQTTMESH_MQTT__RETAIN_AVAILABLE": "false",
        "MQTTMESH_MQTT__KEEPALIVE_MULTIPLIER": "2.5",
        "MQTTMESH_MQTT__IDLE_TIMEOUT": "1m",
        "MQTTMESH_MQTT__MAX_PACKET_SIZE": "2MB",
        "MQTTMESH_LISTENERS__TCP__DEFAULT__BIND": "127.0.0.1:0",
        "MQTTMESH_LISTENERS__WS__DEFAULT__WEBSOCKET__MQTT_PATH": "/mqtt2",
        "MQTTMESH_LOG__CONSOLE__LEVEL": "debug",
        "MQTTMESH_UNRELATED": "ignored",
        "PATH": "/bin",
    })
    assert s.cluster.static.seeds == ("a@h1.example", "b@h2.example")
    assert s.mqtt.max_inflight == 64
    assert s.mqtt.retain_available is False
    assert s.mqtt.keepalive_multiplier == 2.5
    assert s.mqtt.idle_timeout == 60.0
    assert s.mqtt.max_packet_size == 2 * 1024 * 1024
    tcp = s.listener("tcp")
    assert tcp is not None and (tcp.bind.host, tcp.bind.port) == ("127.0.0.1", 0)
    ws = s.listener("ws")
    assert ws is not None and ws.websocket is not None and ws.websocket.mqtt_path == "/mqtt2"
    assert s.log.console.level == "debug"


def test_env_can_add_a_listener() -> None:
    s = load_settings(env={"MQTTMESH_LISTENERS__TCP__EXTRA__BIND": "1999"})
    extra = s.listener("tcp", "extra")
    assert extra is not None and extra.bind.port == 1999 and extra.enable


@pytest.mark.parametrize(("raw", "value"), [
    ("[a@h1,b@h2]", ["a@h1", "b@h2"]),
    ('["a@h1", "b@h2"]', ["a@h1", "b@h2"]),
    ("[1, 2]", [1, 2]),
    ("42", 42),
    ("1.5", 1.5),
    ("true", True),
    ("false", False),
    ('"quoted string"', "quoted string"),
    ("bare string", "bare string"),
    ("a@127.0.0.1", "a@127.0.0.1"),
    ("0.0.0.0:1883", "0.0.0.0:1883"),
    ("30s", "30s"),
    ("/mqtt", "/mqtt"),
    ("", ""),
])
def test_parse_env_value(raw: str, value: object) -> None:
    assert parse_env_value(raw) == value


def test_include_and_substitution(tmp_path: Path) -> None:
    write(tmp_path / "base.conf", 'node.cookie = "from-include"\nport = 2883\n')
    conf = write(tmp_path / "main.conf", """
include "base.conf"
node.name = "n1@127.0.0.1"
listeners.tcp.default.bind = ${port}
cluster.name = ${node.cookie}"-cl"
""")
    s = load_settings(conf, env={})
    assert s.node.cookie == "from-include"
    tcp = s.listener("tcp")
    assert tcp is not None and tcp.bind.port == 2883
    assert s.cluster.name == "from-include-cl"
    assert any("unknown config key port" in w for w in s.warnings)


def test_marked_for_deletion_removes_a_default_listener(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", 'listeners.ws.default = "marked_for_deletion"\n')
    assert load_settings(conf, env={}).listener("ws") is None


def test_unknown_keys_are_warned_about(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", "mqtt.max_inflght = 3\nlisteners.tcp.default.bnd = 1\n")
    warnings = load_settings(conf, env={}).warnings
    assert any("mqtt.max_inflght" in w for w in warnings)
    assert any("listeners.tcp.default.bnd" in w for w in warnings)


def test_tls_listener_with_certificate(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", """
listeners.ssl.default.ssl_options { certfile = "/c.pem", keyfile = "/k.pem", verify = verify_peer }
""")
    ssl = load_settings(conf, env={}).listener("ssl")
    assert ssl is not None and ssl.enable and ssl.ssl_options is not None
    assert (ssl.ssl_options.certfile, ssl.ssl_options.keyfile) == ("/c.pem", "/k.pem")
    assert ssl.ssl_options.verify == "verify_peer"
