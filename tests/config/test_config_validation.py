"""Each bad value stops loading with a ConfigError naming the key and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttmesh.config import load_settings
from mqttmesh.errors import ConfigError


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


BAD_FILE_VALUES = [
    ("node.name", '"noat"', "noat"),
    ("node.name", '"a@"', "a@"),
    ("node.name", '"b a@127.0.0.1"', "b a@127.0.0.1"),
    ("node.name", '"a@localhost"', "a@localhost"),
    ("node.name", '"a@bad_host.example"', "a@bad_host.example"),
    ("node.role", "master", "master"),
    ("node.cookie", '""', ""),
    ("cluster.discovery_strategy", "zookeeper", "zookeeper"),
    ("cluster.proto_dist", "inet_udp", "inet_udp"),
    ("cluster.dns.record_type", "mx", "mx"),
    ("cluster.k8s.address_type", "pod", "pod"),
    ("cluster.static.seeds", '["a@127.0.0.1", "nohost"]', "nohost"),
    ("cluster.autoclean", '"-5m"', "-5m"),
    ("cluster.autoheal", "maybe", "maybe"),
    ("cluster.ssl_dist.verify", "verify_maybe", "verify_maybe"),
    ("mqtt.retry_interval", "-1", -1),
    ("mqtt.idle_timeout", "soon", "soon"),
    ("mqtt.max_packet_size", "1XB", "1XB"),
    ("mqtt.max_packet_size", "-1", -1),
    ("mqtt.max_qos_allowed", "3", 3),
    ("mqtt.max_inflight", "0", 0),
    ("mqtt.max_topic_alias", "70000", 70000),
    ("mqtt.keepalive_multiplier", "0.5", 0.5),
    ("mqtt.shared_subscription_strategy", "fastest", "fastest"),
    ("mqtt.retain_available", "yes-please", "yes-please"),
    ("mqtt.max_subscriptions", "lots", "lots"),
    ("mqtt.server_keepalive", "sometimes", "sometimes"),
    ("listeners.tcp.default.bind", '"0.0.0.0:70000"', "0.0.0.0:70000"),
    ("listeners.tcp.default.bind", "70000", 70000),
    ("listeners.tcp.default.bind", '"0.0.0.0:port"', "0.0.0.0:port"),
    ("listeners.tcp.default.bind", '"[::1:1883"', "[::1:1883"),
    ("listeners.tcp.default.bind", '"::1:1883"', "::1:1883"),
    ("listeners.tcp.default.bind", '"bad host!:1883"', "bad host!:1883"),
    ("listeners.tcp.default.enable", "perhaps", "perhaps"),
    ("listeners.tcp.default.max_connections", "-3", -3),
    ("listeners.ws.default.websocket.mqtt_path", "mqtt", "mqtt"),
    ("listeners.ssl.default.ssl_options.verify", "verify_all", "verify_all"),
    ("dashboard.listeners.http.bind", "99999", 99999),
    ("log.console.level", "loud", "loud"),
    ("log.console.formatter", "xml", "xml"),
    ("sys_topics.sys_msg_interval", '"-1s"', "-1s"),
]


@pytest.mark.parametrize(("key", "text", "value"), BAD_FILE_VALUES)
def test_bad_file_value(tmp_path: Path, key: str, text: str, value: object) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(f"{key} = {text}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(conf), env={})
    err = info.value
    assert err.key == key
    assert err.value == value
    assert key in str(err) and repr(value) in str(err)


def test_bad_env_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"MQTTMESH_MQTT__MAX_QOS_ALLOWED": "7"})
    assert info.value.key == "mqtt.max_qos_allowed" and info.value.value == 7
    with pytest.raises(ConfigError) as info:
        load_settings(env={"EMQX_NODE_NAME": "emqx"})
    assert info.value.key == "node.name" and "'emqx'" in str(info.value)


def test_unknown_listener_type(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("listeners.quic.default.bind = 14567\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(conf), env={})
    assert info.value.key == "listeners.quic"


def test_named_tls_listener_needs_a_certificate(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("listeners.wss.other.bind = 9000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(conf), env={})
    assert info.value.key == "listeners.wss.other.ssl_options.certfile"


def test_default_tls_listener_without_certificate_is_skipped(tmp_path: Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text("listeners.ssl.default.enable = true\n")
    s = load_settings(str(conf), env={})
    ssl = s.listener("ssl")
    assert ssl is not None and not ssl.enable
    assert any("ssl:default skipped" in w for w in s.warnings)


def test_dist_port_range_order(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("node.dist_listen_min = 7000\nnode.dist_listen_max = 6000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(conf), env={})
    assert info.value.key == "node.dist_listen_max"


def test_missing_file_and_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(str(tmp_path / "nope.conf"), env={})
    assert "nope.conf" in str(info.value)
    conf = tmp_path / "broken.conf"
    conf.write_text("node { name = \n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(conf), env={})
    assert "broken.conf" in str(info.value)
