"""Every key's built-in default, with no file and no environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mqttmesh.config import DEFAULTS, LISTENER_DEFAULTS, Bind, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_node_defaults(tmp_path: Path) -> None:
    s = load_settings(env={})
    assert s.config_file is None
    assert s.node.name == "mqttmesh@127.0.0.1"
    assert s.node.cookie == "emqxsecretcookie"
    assert s.node.data_dir == os.path.join(str(tmp_path), "data")
    assert s.node.role == "core"
    assert (s.node.dist_listen_min, s.node.dist_listen_max) == (6369, 6369)
    assert s.pid_file == os.path.join(str(tmp_path), "data", "mqttmesh.pid")
    assert any("node.cookie" in w for w in s.warnings)


def test_mqtt_defaults() -> None:
    m = load_settings(env={}).mqtt
    assert m.max_packet_size == 1024 * 1024
    assert m.max_clientid_len == 65535
    assert m.max_topic_levels == 128
    assert m.max_qos_allowed == 2
    assert m.max_topic_alias == 65535
    assert m.retain_available is True
    assert m.wildcard_subscription is True
    assert m.shared_subscription is True
    assert m.exclusive_subscription is False
    assert m.ignore_loop_deliver is False
    assert m.strict_mode is False
    assert m.keepalive_multiplier == 1.5
    assert m.retry_interval == 30.0
    assert m.max_awaiting_rel == 100
    assert m.await_rel_timeout == 300.0
    assert m.session_expiry_interval == 7200.0
    assert m.max_mqueue_len == 1000
    assert m.mqueue_store_qos0 is True
    assert m.max_inflight == 32
    assert m.max_subscriptions is None
    assert m.upgrade_qos is False
    assert m.idle_timeout == 15.0
    assert m.shared_subscription_strategy == "round_robin"
    assert m.server_keepalive is None
    assert m.response_information == ""
    assert m.use_username_as_clientid is False


def test_cluster_defaults() -> None:
    c = load_settings(env={}).cluster
    assert c.name == "mqttmeshcl"
    assert c.discovery_strategy == "manual"
    assert c.autoheal is True
    assert c.autoclean == 86400.0
    assert c.proto_dist == "inet_tcp"
    assert c.static.seeds == ()
    assert (c.dns.name, c.dns.record_type) == ("localhost", "a")
    assert c.etcd.server == ("http://127.0.0.1:2379",)
    assert c.etcd.prefix == "mqttmeshcl"
    assert c.etcd.node_ttl == 60.0
    assert c.etcd.ssl.enable is False
    assert c.k8s.address_type == "ip"
    assert c.k8s.namespace == "default"
    assert c.mcast.addr == "239.192.0.1"
    assert c.mcast.ports == (4369, 4370)
    assert c.mcast.ttl == 255 and c.mcast.loop is True
    assert c.ssl_dist.certfile is None and c.ssl_dist.keyfile is None
    assert c.ssl_dist.verify == "verify_peer"
    assert c.ssl_dist.server_name_indication is None


def test_listener_defaults() -> None:
    s = load_settings(env={})
    tcp = s.listener("tcp")
    assert tcp is not None and tcp.enable and tcp.bind == Bind("0.0.0.0", 1883)
    assert tcp.max_connections is None and tcp.id == "tcp:default"
    ws = s.listener("ws")
    assert ws is not None and ws.enable and ws.bind.port == 8083
    assert ws.websocket is not None and ws.websocket.mqtt_path == "/mqtt"
    ssl, wss = s.listener("ssl"), s.listener("wss")
    assert ssl is not None and ssl.bind.port == 8883
    assert wss is not None and wss.bind.port == 8084
    # enabled by default, but skipped (with a warning) while no certificate is configured
    assert not ssl.enable and not wss.enable
    assert any("ssl:default skipped" in w for w in s.warnings)
    assert [x.id for x in s.enabled_listeners] == ["tcp:default", "ws:default"]
    (http,) = s.dashboard.listeners
    assert http.enable and http.bind.port == 18083


def test_log_and_sys_topics_defaults(tmp_path: Path) -> None:
    s = load_settings(env={})
    assert (s.log.console.enable, s.log.console.level, s.log.console.formatter) == (
        True, "info", "text")
    assert s.log.file.enable is False
    assert s.log.file.path == os.path.join(str(tmp_path), "data", "log", "node.log")
    assert s.sys_topics.sys_msg_interval == 60.0
    assert s.sys_topics.sys_heartbeat_interval == 30.0


def test_example_file_documents_every_key() -> None:
    text = (REPO / "etc" / "mqttmesh.conf").read_text()
    for key in DEFAULTS:
        assert key in text, key
    for type_, keys in LISTENER_DEFAULTS.items():
        for key in keys:
            assert f"listeners.{type_}.default.{key}" in text, (type_, key)


def test_example_file_loads_to_the_defaults() -> None:
    from_file = load_settings(str(REPO / "etc" / "mqttmesh.conf"), env={})
    builtin = load_settings(env={})
    assert from_file.node == builtin.node
    assert from_file.mqtt == builtin.mqtt
    assert from_file.cluster == builtin.cluster
    assert from_file.listeners == builtin.listeners
    assert from_file.dashboard == builtin.dashboard
    assert from_file.log == builtin.log
    assert from_file.sys_topics == builtin.sys_topics
    assert not [w for w in from_file.warnings if "unknown" in w]


def test_example_file_uncommented_gives_the_defaults(tmp_path: Path) -> None:
    lines = (REPO / "etc" / "mqttmesh.conf").read_text().splitlines()
    active = [line[2:] for line in lines if line.startswith("# ") and " = " in line]
    conf = tmp_path / "all.conf"
    conf.write_text("\n".join(active) + "\n")
    from_file = load_settings(str(conf), env={})
    builtin = load_settings(env={})
    assert from_file.node == builtin.node
    assert from_file.mqtt == builtin.mqtt
    assert from_file.cluster == builtin.cluster
    assert from_file.listeners == builtin.listeners
    assert from_file.dashboard == builtin.dashboard
    assert from_file.log == builtin.log
    assert from_file.sys_topics == builtin.sys_topics
    assert not [w for w in from_file.warnings if "unknown" in w]


def test_default_path_used_only_if_it_exists(tmp_path: Path) -> None:
    assert load_settings(env={}).config_file is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "mqttmesh.conf").write_text('node.name = "x@10.0.0.1"\n')
    s = load_settings(env={})
    assert s.node.name == "x@10.0.0.1"
    assert s.config_file == str(tmp_path / "etc" / "mqttmesh.conf")


def test_settings_are_frozen() -> None:
    s = load_settings(env={})
    with pytest.raises(AttributeError):
        s.node.name = "y@1.2.3.4"  # type: ignore[misc]
