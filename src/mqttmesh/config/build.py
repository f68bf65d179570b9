"""Turn a plain config tree (file + env merged) into validated `Settings`."""

from __future__ import annotations

import os
from typing import Any

from mqttmesh.config import units as u
from mqttmesh.config.defaults import DEFAULT_COOKIE, DEFAULTS, LISTENER_DEFAULTS
from mqttmesh.config.nodename import validate_node_name
from mqttmesh.config.settings import (
    AuthenticationSettings, AuthorizationSettings, AuthzCacheSettings, AuthzSourcesSettings,
    FileSourceSettings, PasswordHashSettings,
    ClusterSettings, ConsoleLogSettings, DashboardSettings, DnsSettings, EtcdSettings,
    FileLogSettings, K8sSettings, ListenerSettings, LogSettings, McastSettings, MqttSettings,
    NodeSettings, Settings, SslDistSettings, SslOptions, StaticSettings, SysTopicsSettings,
    WebsocketSettings,
)
from mqttmesh.errors import ConfigError

__all__ = ["build_settings"]

_MISSING = object()
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
SHARED_STRATEGIES = ("random", "round_robin", "round_robin_per_group", "sticky", "local",
                     "hash_clientid", "hash_topic")
VERIFY = ("verify_none", "verify_peer")


def _lookup(tree: Any, path: str) -> Any:
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaves(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict) or not tree:
        return [prefix] if prefix else []
    out: list[str] = []
    for key, value in tree.items():
        out.extend(_leaves(value, f"{prefix}.{key}" if prefix else key))
    return out


class _Reader:
    """Reads keys from the user tree with defaults; notes which keys were known."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self.tree = tree

    def __call__(self, key: str) -> Any:
        value = _lookup(self.tree, key)
        return DEFAULTS[key] if value is _MISSING else value

    def given(self, key: str) -> bool:
        return _lookup(self.tree, key) is not _MISSING


def _opt_str(key: str, value: Any) -> str | None:
    text = u.parse_str(key, value)
    return text or None


def build_settings(tree: dict[str, Any], config_file: str | None) -> Settings:
    """Validate `tree` and build Settings. Raises ConfigError on the first bad value."""
    r = _Reader(tree)
    warnings: list[str] = []
    for leaf in _leaves(tree):
        if leaf not in DEFAULTS and not leaf.startswith("listeners.") \
                and not _is_parent_of_known(leaf):
            warnings.append(f"unknown config key {leaf} ignored")
    node = _node(r)
    if node.cookie == DEFAULT_COOKIE:
        warnings.append(f"node.cookie is the default {DEFAULT_COOKIE!r}: anyone who knows it "
                        "can join this cluster; set a secret node.cookie")
    listeners = _listeners(tree.get("listeners", {}), warnings)
    log_path = u.parse_str("log.file.path", r("log.file.path"))
    log_path = os.path.abspath(log_path) if log_path else os.path.join(
        node.data_dir, "log", "node.log")
    cluster = _cluster(r)
    if node.role == "replicant" and cluster.discovery_strategy == "manual":
        raise ConfigError("node.role", "replicant",
                          "a replicant finds its cores by auto clustering: set "
                          "cluster.discovery_strategy (static, dns, etcd, k8s or mcast), "
                          "not manual")
    return Settings(
        node=node,
        cluster=cluster,
        mqtt=_mqtt(r),
        listeners=listeners,
        dashboard=DashboardSettings(listeners=(ListenerSettings(
            type="http", name="http",
            enable=u.parse_bool("dashboard.listeners.http.enable",
                                r("dashboard.listeners.http.enable")),
            bind=u.parse_bind("dashboard.listeners.http.bind", r("dashboard.listeners.http.bind")),
            max_connections=u.parse_int(
                "dashboard.listeners.http.max_connections",
                r("dashboard.listeners.http.max_connections"), minimum=0, allow_infinity=True),
            ssl_options=None, websocket=None),),
            default_username=_nonempty(r, "dashboard.default_username"),
            default_password=_nonempty(r, "dashboard.default_password"),
            token_expired_time=_positive_duration(r, "dashboard.token_expired_time")),
        log=LogSettings(
            console=ConsoleLogSettings(
                enable=u.parse_bool("log.console.enable", r("log.console.enable")),
                level=u.parse_enum("log.console.level", r("log.console.level"), LOG_LEVELS),
                formatter=u.parse_enum("log.console.formatter", r("log.console.formatter"),
                                       ("text", "json"))),
            file=FileLogSettings(
                enable=u.parse_bool("log.file.enable", r("log.file.enable")),
                path=log_path,
                level=u.parse_enum("log.file.level", r("log.file.level"), LOG_LEVELS),
                formatter=u.parse_enum("log.file.formatter", r("log.file.formatter"),
                                       ("text", "json")))),
        sys_topics=SysTopicsSettings(
            sys_msg_interval=u.parse_duration(
                "sys_topics.sys_msg_interval", r("sys_topics.sys_msg_interval"),
                allow_disabled=True),
            sys_heartbeat_interval=u.parse_duration(
                "sys_topics.sys_heartbeat_interval", r("sys_topics.sys_heartbeat_interval"),
                allow_disabled=True)),
        authentication=_authentication(r),
        authorization=_authorization(r),
        config_file=config_file,
        warnings=tuple(warnings),
    )


def _nonempty(r: _Reader, key: str) -> str:
    text = u.parse_str(key, r(key))
    if not text:
        raise ConfigError(key, text, "must not be empty")
    return text


def _positive_duration(r: _Reader, key: str) -> float:
    value = u.parse_duration(key, r(key))
    if value is None or value <= 0:
        raise ConfigError(key, r(key), "must be a positive duration")
    return value


def _authentication(r: _Reader) -> AuthenticationSettings:
    iterations = u.parse_int("authentication.password_hash.iterations",
                             r("authentication.password_hash.iterations"),
                             minimum=1, maximum=10_000_000)
    assert iterations is not None
    return AuthenticationSettings(
        enable=u.parse_bool("authentication.enable", r("authentication.enable")),
        allow_anonymous=u.parse_bool("authentication.allow_anonymous",
                                     r("authentication.allow_anonymous")),
        password_hash=PasswordHashSettings(iterations=iterations))


def _authorization(r: _Reader) -> AuthorizationSettings:
    max_size = u.parse_int("authorization.cache.max_size", r("authorization.cache.max_size"),
                           minimum=1, maximum=1_000_000)
    assert max_size is not None
    path = _nonempty(r, "authorization.sources.file.path")
    return AuthorizationSettings(
        no_match=u.parse_enum("authorization.no_match", r("authorization.no_match"),
                              ("allow", "deny")),
        deny_action=u.parse_enum("authorization.deny_action", r("authorization.deny_action"),
                                 ("ignore", "disconnect")),
        cache=AuthzCacheSettings(
            enable=u.parse_bool("authorization.cache.enable", r("authorization.cache.enable")),
            max_size=max_size),
        sources=AuthzSourcesSettings(file=FileSourceSettings(
            enable=u.parse_bool("authorization.sources.file.enable",
                                r("authorization.sources.file.enable")),
            path=path)))


def _is_parent_of_known(leaf: str) -> bool:
    # an empty object such as `cluster.static {}` is a leaf of the plain tree
    return any(key.startswith(leaf + ".") for key in DEFAULTS)


def _node(r: _Reader) -> NodeSettings:
    dmin = u.parse_int("node.dist_listen_min", r("node.dist_listen_min"), minimum=1, maximum=65535)
    dmax = u.parse_int("node.dist_listen_max", r("node.dist_listen_max"), minimum=1, maximum=65535)
    assert dmin is not None and dmax is not None
    if dmax < dmin:
        raise ConfigError("node.dist_listen_max", dmax, "smaller than node.dist_listen_min")
    data_dir = u.parse_str("node.data_dir", r("node.data_dir"))
    if not data_dir:
        raise ConfigError("node.data_dir", data_dir, "must not be empty")
    cookie = u.parse_str("node.cookie", r("node.cookie"))
    if not cookie:
        raise ConfigError("node.cookie", cookie, "must not be empty")
    return NodeSettings(
        name=validate_node_name(r("node.name")),
        cookie=cookie,
        data_dir=os.path.abspath(os.path.expanduser(data_dir)),
        role=u.parse_enum("node.role", r("node.role"), ("core", "replicant")),
        dist_listen_min=dmin,
        dist_listen_max=dmax,
    )


def _ssl_dist(r: _Reader, p: str) -> SslDistSettings:
    return SslDistSettings(
        certfile=_opt_str(f"{p}.certfile", r(f"{p}.certfile")),
        keyfile=_opt_str(f"{p}.keyfile", r(f"{p}.keyfile")),
        cacertfile=_opt_str(f"{p}.cacertfile", r(f"{p}.cacertfile")),
        verify=u.parse_enum(f"{p}.verify", r(f"{p}.verify"), VERIFY),
        server_name_indication=_opt_str(f"{p}.server_name_indication",
                                        r(f"{p}.server_name_indication")),
    )


def _grace(r: _Reader) -> float:
    grace = u.parse_duration("cluster.replicant_route_grace", r("cluster.replicant_route_grace"))
    if grace is None or grace <= 0:
        raise ConfigError("cluster.replicant_route_grace", r("cluster.replicant_route_grace"),
                          "must be a positive duration (e.g. 15m)")
    return grace


def _cluster(r: _Reader) -> ClusterSettings:
    strategy = u.parse_enum("cluster.discovery_strategy", r("cluster.discovery_strategy"),
                            ("manual", "static", "dns", "etcd", "k8s", "mcast"))
    seeds = tuple(validate_node_name(seed, "cluster.static.seeds")
                  for seed in u.parse_str_list("cluster.static.seeds", r("cluster.static.seeds")))
    ports = tuple(u.parse_int("cluster.mcast.ports", p, minimum=1, maximum=65535) or 0
                  for p in _int_list("cluster.mcast.ports", r("cluster.mcast.ports")))
    node_ttl = u.parse_duration("cluster.etcd.node_ttl", r("cluster.etcd.node_ttl"))
    assert node_ttl is not None
    etcd_ssl = _ssl_dist(r, "cluster.etcd.ssl")
    return ClusterSettings(
        name=u.parse_str("cluster.name", r("cluster.name")),
        discovery_strategy=strategy,
        autoheal=u.parse_bool("cluster.autoheal", r("cluster.autoheal")),
        autoclean=u.parse_duration("cluster.autoclean", r("cluster.autoclean"),
                                   allow_infinity=True, allow_disabled=True),
        replicant_route_grace=_grace(r),
        proto_dist=u.parse_enum("cluster.proto_dist", r("cluster.proto_dist"),
                                ("inet_tcp", "inet6_tcp", "inet_tls")),
        static=StaticSettings(seeds=seeds),
        dns=DnsSettings(
            name=u.parse_str("cluster.dns.name", r("cluster.dns.name")),
            record_type=u.parse_enum("cluster.dns.record_type", r("cluster.dns.record_type"),
                                     ("a", "aaaa", "srv"))),
        etcd=EtcdSettings(
            server=u.parse_str_list("cluster.etcd.server", r("cluster.etcd.server")),
            prefix=u.parse_str("cluster.etcd.prefix", r("cluster.etcd.prefix")),
            node_ttl=node_ttl,
            ssl=SslOptions(
                enable=u.parse_bool("cluster.etcd.ssl.enable", r("cluster.etcd.ssl.enable")),
                certfile=etcd_ssl.certfile, keyfile=etcd_ssl.keyfile,
                cacertfile=etcd_ssl.cacertfile, verify=etcd_ssl.verify,
                fail_if_no_peer_cert=False,
                server_name_indication=etcd_ssl.server_name_indication)),
        k8s=K8sSettings(
            apiserver=u.parse_str("cluster.k8s.apiserver", r("cluster.k8s.apiserver")),
            service_name=u.parse_str("cluster.k8s.service_name", r("cluster.k8s.service_name")),
            address_type=u.parse_enum("cluster.k8s.address_type", r("cluster.k8s.address_type"),
                                      ("ip", "dns", "hostname")),
            namespace=u.parse_str("cluster.k8s.namespace", r("cluster.k8s.namespace")),
            suffix=u.parse_str("cluster.k8s.suffix", r("cluster.k8s.suffix"))),
        mcast=McastSettings(
            addr=u.parse_str("cluster.mcast.addr", r("cluster.mcast.addr")),
            ports=ports,
            iface=u.parse_str("cluster.mcast.iface", r("cluster.mcast.iface")),
            ttl=u.parse_int("cluster.mcast.ttl", r("cluster.mcast.ttl"),
                            minimum=0, maximum=255) or 0,
            loop=u.parse_bool("cluster.mcast.loop", r("cluster.mcast.loop"))),
        ssl_dist=_ssl_dist(r, "cluster.ssl_dist"),
    )


def _int_list(key: str, value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    raise ConfigError(key, value, "expected a list of ports")


def _mqtt(r: _Reader) -> MqttSettings:
    def dur(name: str, **kw: bool) -> Any:
        return u.parse_duration(f"mqtt.{name}", r(f"mqtt.{name}"), **kw)

    def num(name: str, lo: int = 0, hi: int | None = None, inf: bool = False) -> Any:
        return u.parse_int(f"mqtt.{name}", r(f"mqtt.{name}"), minimum=lo, maximum=hi,
                           allow_infinity=inf)

    def flag(name: str) -> bool:
        return u.parse_bool(f"mqtt.{name}", r(f"mqtt.{name}"))

    keepalive = r("mqtt.server_keepalive")
    server_keepalive = None if isinstance(keepalive, str) and keepalive.strip().lower() in (
        "disabled", "disable", "false") else u.parse_int("mqtt.server_keepalive", keepalive,
                                                        minimum=0, maximum=65535)
    max_packet_size = u.parse_size("mqtt.max_packet_size", r("mqtt.max_packet_size"))
    assert max_packet_size is not None
    if not 1 <= max_packet_size <= 268435455:
        raise ConfigError("mqtt.max_packet_size", r("mqtt.max_packet_size"),
                          "must be between 1 byte and 256MB")
    return MqttSettings(
        max_packet_size=max_packet_size,
        max_clientid_len=num("max_clientid_len", 23, 65535),
        max_topic_levels=num("max_topic_levels", 1, 65535),
        max_qos_allowed=num("max_qos_allowed", 0, 2),
        max_topic_alias=num("max_topic_alias", 0, 65535),
        retain_available=flag("retain_available"),
        wildcard_subscription=flag("wildcard_subscription"),
        shared_subscription=flag("shared_subscription"),
        exclusive_subscription=flag("exclusive_subscription"),
        ignore_loop_deliver=flag("ignore_loop_deliver"),
        strict_mode=flag("strict_mode"),
        keepalive_multiplier=u.parse_float("mqtt.keepalive_multiplier",
                                           r("mqtt.keepalive_multiplier"), minimum=1.0),
        retry_interval=dur("retry_interval"),
        max_awaiting_rel=num("max_awaiting_rel", 0, None, True),
        await_rel_timeout=dur("await_rel_timeout"),
        session_expiry_interval=dur("session_expiry_interval"),
        max_mqueue_len=num("max_mqueue_len", 0, None, True),
        mqueue_store_qos0=flag("mqueue_store_qos0"),
        max_inflight=num("max_inflight", 1, 65535),
        max_subscriptions=num("max_subscriptions", 0, None, True),
        upgrade_qos=flag("upgrade_qos"),
        idle_timeout=dur("idle_timeout"),
        shared_subscription_strategy=u.parse_enum(
            "mqtt.shared_subscription_strategy", r("mqtt.shared_subscription_strategy"),
            SHARED_STRATEGIES),
        server_keepalive=server_keepalive,
        response_information=u.parse_str("mqtt.response_information",
                                         r("mqtt.response_information")),
        use_username_as_clientid=flag("use_username_as_clientid"),
    )


def _listeners(given: Any, warnings: list[str]) -> tuple[ListenerSettings, ...]:
    """Default listeners (`listeners.TYPE.default`) plus the user's named ones."""
    if not isinstance(given, dict):
        raise ConfigError("listeners", given, "expected an object of listener types")
    names: list[tuple[str, str]] = [(t, "default") for t in LISTENER_DEFAULTS]
    for type_, by_name in given.items():
        if type_ not in LISTENER_DEFAULTS:
            raise ConfigError(f"listeners.{type_}", by_name,
                              "unknown listener type; expected tcp, ssl, ws or wss")
        if not isinstance(by_name, dict):
            raise ConfigError(f"listeners.{type_}", by_name, "expected listeners by name")
        names.extend((type_, name) for name in by_name if (type_, name) not in names)
    out: list[ListenerSettings] = []
    for type_, name in names:
        user = _lookup(given, f"{type_}.{name}")
        if user is _MISSING:
            user = {}
        if user == "marked_for_deletion":
            continue
        if not isinstance(user, dict):
            raise ConfigError(f"listeners.{type_}.{name}", user, "expected an object")
        item = _listener(type_, name, user, warnings)
        out.append(item)
    return tuple(out)


def _listener(type_: str, name: str, user: dict[str, Any],
              warnings: list[str]) -> ListenerSettings:
    p = f"listeners.{type_}.{name}"
    defaults = LISTENER_DEFAULTS[type_]
    for leaf in _leaves(user):
        if leaf not in defaults:
            warnings.append(f"unknown config key {p}.{leaf} ignored")

    def get(key: str) -> Any:
        value = _lookup(user, key)
        return defaults[key] if value is _MISSING else value

    enable = u.parse_bool(f"{p}.enable", get("enable"))
    ssl_options = None
    if "ssl_options.certfile" in defaults:
        ssl_options = SslOptions(
            enable=True,
            certfile=_opt_str(f"{p}.ssl_options.certfile", get("ssl_options.certfile")),
            keyfile=_opt_str(f"{p}.ssl_options.keyfile", get("ssl_options.keyfile")),
            cacertfile=_opt_str(f"{p}.ssl_options.cacertfile", get("ssl_options.cacertfile")),
            verify=u.parse_enum(f"{p}.ssl_options.verify", get("ssl_options.verify"), VERIFY),
            fail_if_no_peer_cert=u.parse_bool(f"{p}.ssl_options.fail_if_no_peer_cert",
                                              get("ssl_options.fail_if_no_peer_cert")),
            server_name_indication=None)
        if enable and not (ssl_options.certfile and ssl_options.keyfile):
            if name == "default":
                # SPEC: enabled by default, but a node with no certificate must start.
                warnings.append(f"listener {type_}:{name} skipped: {p}.ssl_options.certfile "
                                "and keyfile are not set")
                enable = False
            else:
                raise ConfigError(f"{p}.ssl_options.certfile", ssl_options.certfile or "",
                                  "a TLS listener needs ssl_options.certfile and keyfile")
    websocket = None
    if "websocket.mqtt_path" in defaults:
        path = u.parse_str(f"{p}.websocket.mqtt_path", get("websocket.mqtt_path"))
        if not path.startswith("/"):
            raise ConfigError(f"{p}.websocket.mqtt_path", path, "must start with /")
        websocket = WebsocketSettings(mqtt_path=path)
    return ListenerSettings(
        type=type_, name=name, enable=enable,
        bind=u.parse_bind(f"{p}.bind", get("bind")),
        max_connections=u.parse_int(f"{p}.max_connections", get("max_connections"),
                                    minimum=0, allow_infinity=True),
        ssl_options=ssl_options, websocket=websocket,
        max_conn_rate=_rate(f"{p}.max_conn_rate", get("max_conn_rate")))


def _rate(key: str, value: Any) -> float | None:
    """EMQX's rate form: ``infinity``, ``N`` or ``"N/s"`` / ``"N/m"`` -> per second."""
    if value == "infinity" or value is None:
        return None
    text = str(value).strip().replace(" ", "")
    per = 1.0
    if "/" in text:
        text, unit = text.split("/", 1)
        per = {"s": 1.0, "1s": 1.0, "m": 60.0, "1m": 60.0, "min": 60.0}.get(unit, 0.0)
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if per == 0.0 or number <= 0 or isinstance(value, bool):
        raise ConfigError(key, value, "expected infinity, N, \"N/s\" or \"N/m\" (N > 0)")
    return number / per
