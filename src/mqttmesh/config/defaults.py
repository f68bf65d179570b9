"""Built-in defaults of every config key (the file `etc/mqttmesh.conf` documents them)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_COOKIE",
    "DEFAULTS",
    "LISTENER_DEFAULTS",
    "DEFAULT_LISTENERS",
    "LISTENER_TYPES",
    "ENV_ROOTS",
    "NODE_KEYS",
]

DEFAULT_CONFIG_PATH = "etc/mqttmesh.conf"
DEFAULT_COOKIE = "emqxsecretcookie"

#: Dotted key -> default, in the form a user would write it in the file.
DEFAULTS: dict[str, Any] = {
    "node.name": "mqttmesh@127.0.0.1",
    "node.cookie": DEFAULT_COOKIE,
    "node.data_dir": "data",
    "node.role": "core",
    "node.dist_listen_min": 6369,
    "node.dist_listen_max": 6369,

    "cluster.name": "mqttmeshcl",
    "cluster.discovery_strategy": "manual",
    "cluster.autoheal": True,
    "cluster.autoclean": "24h",
    "cluster.replicant_route_grace": "15m",
    "cluster.proto_dist": "inet_tcp",
    "cluster.static.seeds": [],
    "cluster.dns.name": "localhost",
    "cluster.dns.record_type": "a",
    "cluster.etcd.server": ["http://127.0.0.1:2379"],
    "cluster.etcd.prefix": "mqttmeshcl",
    "cluster.etcd.node_ttl": "1m",
    "cluster.etcd.ssl.enable": False,
    "cluster.etcd.ssl.certfile": "",
    "cluster.etcd.ssl.keyfile": "",
    "cluster.etcd.ssl.cacertfile": "",
    "cluster.etcd.ssl.verify": "verify_none",
    "cluster.etcd.ssl.server_name_indication": "",
    "cluster.k8s.apiserver": "https://kubernetes.default.svc:443",
    "cluster.k8s.service_name": "mqttmesh-headless",
    "cluster.k8s.address_type": "ip",
    "cluster.k8s.namespace": "default",
    "cluster.k8s.suffix": "pod.cluster.local",
    "cluster.mcast.addr": "239.192.0.1",
    "cluster.mcast.ports": [4369, 4370],
    "cluster.mcast.iface": "0.0.0.0",
    "cluster.mcast.ttl": 255,
    "cluster.mcast.loop": True,
    "cluster.ssl_dist.certfile": "",
    "cluster.ssl_dist.keyfile": "",
    "cluster.ssl_dist.cacertfile": "",
    "cluster.ssl_dist.verify": "verify_peer",
    "cluster.ssl_dist.server_name_indication": "",

    "mqtt.max_packet_size": "1MB",
    "mqtt.max_clientid_len": 65535,
    "mqtt.max_topic_levels": 128,
    "mqtt.max_qos_allowed": 2,
    "mqtt.max_topic_alias": 65535,
    "mqtt.retain_available": True,
    "mqtt.wildcard_subscription": True,
    "mqtt.shared_subscription": True,
    "mqtt.exclusive_subscription": False,
    "mqtt.ignore_loop_deliver": False,
    "mqtt.strict_mode": False,
    "mqtt.keepalive_multiplier": 1.5,
    "mqtt.retry_interval": "30s",
    "mqtt.max_awaiting_rel": 100,
    "mqtt.await_rel_timeout": "300s",
    "mqtt.session_expiry_interval": "2h",
    "mqtt.max_mqueue_len": 1000,
    "mqtt.mqueue_store_qos0": True,
    "mqtt.max_inflight": 32,
    "mqtt.max_subscriptions": "infinity",
    "mqtt.upgrade_qos": False,
    "mqtt.idle_timeout": "15s",
    "mqtt.shared_subscription_strategy": "round_robin",
    "mqtt.server_keepalive": "disabled",
    "mqtt.response_information": "",
    "mqtt.use_username_as_clientid": False,

    "dashboard.listeners.http.enable": True,
    "dashboard.listeners.http.bind": 18083,
    "dashboard.listeners.http.max_connections": 512,
    "dashboard.default_username": "admin",
    "dashboard.default_password": "public",
    "dashboard.token_expired_time": "60m",

    "authentication.enable": False,
    "authentication.allow_anonymous": True,
    "authentication.password_hash.iterations": 20000,
    "authorization.no_match": "allow",
    "authorization.deny_action": "ignore",
    "authorization.cache.enable": True,
    "authorization.cache.max_size": 32,
    "authorization.sources.file.enable": True,
    "authorization.sources.file.path": "etc/acl.conf",

    "log.console.enable": True,
    "log.console.level": "info",
    "log.console.formatter": "text",
    "log.file.enable": False,
    "log.file.path": "",
    "log.file.level": "info",
    "log.file.formatter": "text",

    "sys_topics.sys_msg_interval": "1m",
    "sys_topics.sys_heartbeat_interval": "30s",
}

#: Per listener type: key (relative to `listeners.TYPE.NAME`) -> default.
_COMMON = {"enable": True, "max_connections": "infinity", "max_conn_rate": "infinity"}
_SSL = {
    "ssl_options.certfile": "",
    "ssl_options.keyfile": "",
    "ssl_options.cacertfile": "",
    "ssl_options.verify": "verify_none",
    "ssl_options.fail_if_no_peer_cert": False,
}
_WS = {"websocket.mqtt_path": "/mqtt"}
LISTENER_DEFAULTS: dict[str, dict[str, Any]] = {
    "tcp": {**_COMMON, "bind": "0.0.0.0:1883"},
    "ssl": {**_COMMON, "bind": "0.0.0.0:8883", **_SSL},
    "ws": {**_COMMON, "bind": "0.0.0.0:8083", **_WS},
    "wss": {**_COMMON, "bind": "0.0.0.0:8084", **_SSL, **_WS},
}
LISTENER_TYPES = tuple(LISTENER_DEFAULTS)
#: The listeners that exist without any configuration: `listeners.TYPE.default`.
DEFAULT_LISTENERS = LISTENER_TYPES

ENV_ROOTS = frozenset({"node", "cluster", "mqtt", "listeners", "dashboard", "log", "sys_topics",
                       "authentication", "authorization"})
NODE_KEYS = frozenset(key.split(".", 1)[1] for key in DEFAULTS if key.startswith("node."))
