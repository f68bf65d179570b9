"""Settings: the frozen, typed tree a node runs on (built by `load_settings`).

Units: durations are float seconds, sizes int bytes; `None` means `infinity` (no limit)
or `disabled`, as each field says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mqttmesh.config.units import Bind

__all__ = [
    "Settings",
    "NodeSettings",
    "ClusterSettings",
    "StaticSettings",
    "DnsSettings",
    "EtcdSettings",
    "K8sSettings",
    "McastSettings",
    "SslDistSettings",
    "SslOptions",
    "WebsocketSettings",
    "ListenerSettings",
    "DashboardSettings",
    "MqttSettings",
    "LogSettings",
    "ConsoleLogSettings",
    "FileLogSettings",
    "SysTopicsSettings",
    "AuthenticationSettings",
    "PasswordHashSettings",
    "AuthorizationSettings",
    "AuthzCacheSettings",
    "AuthzSourcesSettings",
    "FileSourceSettings",
]


@dataclass(frozen=True, slots=True)
class NodeSettings:
    name: str                 # "name@host", validated
    cookie: str
    data_dir: str             # absolute path
    role: str                 # "core" | "replicant"
    dist_listen_min: int      # epmd mode port range (SPEC §3)
    dist_listen_max: int


@dataclass(frozen=True, slots=True)
class StaticSettings:
    seeds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DnsSettings:
    name: str
    record_type: str          # "a" | "srv"


@dataclass(frozen=True, slots=True)
class SslOptions:
    """TLS options of a listener (`ssl_options.*`) or a client (`cluster.etcd.ssl.*`)."""

    enable: bool
    certfile: str | None
    keyfile: str | None
    cacertfile: str | None
    verify: str               # "verify_none" | "verify_peer"
    fail_if_no_peer_cert: bool
    server_name_indication: str | None   # None = default (the host), "disable" = off


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    server: tuple[str, ...]   # e.g. ("http://127.0.0.1:2379",)
    prefix: str
    node_ttl: float           # seconds
    ssl: SslOptions


@dataclass(frozen=True, slots=True)
class K8sSettings:
    apiserver: str
    service_name: str
    address_type: str         # "ip" | "dns" | "hostname"
    namespace: str
    suffix: str


@dataclass(frozen=True, slots=True)
class McastSettings:
    addr: str
    ports: tuple[int, ...]
    iface: str
    ttl: int
    loop: bool


@dataclass(frozen=True, slots=True)
class SslDistSettings:
    certfile: str | None
    keyfile: str | None
    cacertfile: str | None
    verify: str               # "verify_none" | "verify_peer"
    server_name_indication: str | None


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    name: str
    discovery_strategy: str   # manual | static | dns | etcd | k8s | mcast
    autoheal: bool
    autoclean: float | None   # seconds; None = never
    replicant_route_grace: float  # seconds a dead replicant's routes are kept (then purged)
    proto_dist: str           # inet_tcp | inet6_tcp | inet_tls
    static: StaticSettings
    dns: DnsSettings
    etcd: EtcdSettings
    k8s: K8sSettings
    mcast: McastSettings
    ssl_dist: SslDistSettings


@dataclass(frozen=True, slots=True)
class WebsocketSettings:
    mqtt_path: str            # "/mqtt"


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """One listener: `listeners.TYPE.NAME` or `dashboard.listeners.http`."""

    type: str                 # "tcp" | "ssl" | "ws" | "wss" | "http" | "https"
    name: str                 # "default", or the user's name
    enable: bool              # False also for default TLS listeners lacking a cert
    bind: Bind
    max_connections: int | None           # None = infinity
    ssl_options: SslOptions | None        # ssl, wss, https only
    websocket: WebsocketSettings | None   # ws, wss only
    max_conn_rate: float | None = None    # new connections per second; None = infinity

    @property
    def id(self) -> str:
        """`tcp:default` style identifier, used in logs."""
        return f"{self.type}:{self.name}"


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    listeners: tuple[ListenerSettings, ...]
    default_username: str = "admin"       # the admin user created at first start
    default_password: str = "public"      # its first password (stored hashed in data_dir)
    token_expired_time: float = 3600.0    # seconds a login token stays valid


@dataclass(frozen=True, slots=True)
class PasswordHashSettings:
    iterations: int           # PBKDF2 rounds for new/changed passwords


@dataclass(frozen=True, slots=True)
class AuthenticationSettings:
    """`authentication.*` (docs/access.md): the built-in user store."""

    enable: bool
    allow_anonymous: bool
    password_hash: PasswordHashSettings


@dataclass(frozen=True, slots=True)
class AuthzCacheSettings:
    enable: bool
    max_size: int


@dataclass(frozen=True, slots=True)
class FileSourceSettings:
    enable: bool
    path: str                 # as given (relative paths: to the working directory)


@dataclass(frozen=True, slots=True)
class AuthzSourcesSettings:
    file: FileSourceSettings


@dataclass(frozen=True, slots=True)
class AuthorizationSettings:
    """`authorization.*` (docs/access.md): ACL file, no_match, deny_action, cache."""

    no_match: str             # "allow" | "deny"
    deny_action: str          # "ignore" | "disconnect"
    cache: AuthzCacheSettings
    sources: AuthzSourcesSettings


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """`mqtt.*`: EMQX's names and defaults."""

    max_packet_size: int
    max_clientid_len: int
    max_topic_levels: int
    max_qos_allowed: int
    max_topic_alias: int
    retain_available: bool
    wildcard_subscription: bool
    shared_subscription: bool
    exclusive_subscription: bool
    ignore_loop_deliver: bool
    strict_mode: bool
    keepalive_multiplier: float
    retry_interval: float
    max_awaiting_rel: int | None
    await_rel_timeout: float
    session_expiry_interval: float
    max_mqueue_len: int | None
    mqueue_store_qos0: bool
    max_inflight: int
    max_subscriptions: int | None
    upgrade_qos: bool
    idle_timeout: float
    shared_subscription_strategy: str
    server_keepalive: int | None          # seconds; None = disabled
    response_information: str
    use_username_as_clientid: bool


@dataclass(frozen=True, slots=True)
class ConsoleLogSettings:
    enable: bool
    level: str                # debug | info | notice | warning | error | critical ...
    formatter: str            # "text" | "json"


@dataclass(frozen=True, slots=True)
class FileLogSettings:
    enable: bool
    path: str                 # absolute
    level: str
    formatter: str


@dataclass(frozen=True, slots=True)
class LogSettings:
    console: ConsoleLogSettings
    file: FileLogSettings


@dataclass(frozen=True, slots=True)
class SysTopicsSettings:
    sys_msg_interval: float | None        # None = disabled
    sys_heartbeat_interval: float | None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node runs on. `warnings` are for the node to log once logging is up."""

    node: NodeSettings
    cluster: ClusterSettings
    mqtt: MqttSettings
    listeners: tuple[ListenerSettings, ...]
    dashboard: DashboardSettings
    log: LogSettings
    sys_topics: SysTopicsSettings
    authentication: AuthenticationSettings = field(default_factory=lambda: _DEFAULT_AUTHN)
    authorization: AuthorizationSettings = field(default_factory=lambda: _DEFAULT_AUTHZ)
    config_file: str | None = None        # absolute path of the file read, if any
    warnings: tuple[str, ...] = field(default=())

    def listener(self, type_: str, name: str = "default") -> ListenerSettings | None:
        """The listener `listeners.TYPE.NAME`, or None."""
        for item in self.listeners:
            if item.type == type_ and item.name == name:
                return item
        return None

    @property
    def enabled_listeners(self) -> tuple[ListenerSettings, ...]:
        """Listeners to start (enable = true)."""
        return tuple(item for item in self.listeners if item.enable)

    @property
    def pid_file(self) -> str:
        """`<data_dir>/mqttmesh.pid`: written by the node once listening (contract)."""
        return f"{self.node.data_dir}/mqttmesh.pid"


_DEFAULT_AUTHN = AuthenticationSettings(enable=False, allow_anonymous=True,
                                        password_hash=PasswordHashSettings(iterations=20000))
_DEFAULT_AUTHZ = AuthorizationSettings(
    no_match="allow", deny_action="ignore",
    cache=AuthzCacheSettings(enable=True, max_size=32),
    sources=AuthzSourcesSettings(file=FileSourceSettings(enable=True, path="etc/acl.conf")))
