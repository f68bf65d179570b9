"""mqttmesh.config: Settings (frozen), HOCON + environment loading, units, node names."""

from mqttmesh.config.defaults import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_COOKIE,
    DEFAULTS,
    LISTENER_DEFAULTS,
)
from mqttmesh.config.loader import env_overrides, load_settings, parse_env_value
from mqttmesh.config.nodename import (
    dist_port,
    name_offset,
    node_host,
    node_name_parts,
    rpc_port,
    validate_node_name,
)
from mqttmesh.config.settings import (
    AuthenticationSettings,
    AuthorizationSettings,
    ClusterSettings,
    ConsoleLogSettings,
    DashboardSettings,
    DnsSettings,
    EtcdSettings,
    FileLogSettings,
    K8sSettings,
    ListenerSettings,
    LogSettings,
    McastSettings,
    MqttSettings,
    NodeSettings,
    Settings,
    SslDistSettings,
    SslOptions,
    StaticSettings,
    SysTopicsSettings,
    WebsocketSettings,
)
from mqttmesh.config.units import (
    Bind,
    parse_bind,
    parse_duration,
    parse_size,
)
from mqttmesh.errors import ConfigError

__all__ = [
    "load_settings", "env_overrides", "parse_env_value",
    "Settings", "NodeSettings", "ClusterSettings", "StaticSettings", "DnsSettings",
    "EtcdSettings", "K8sSettings", "McastSettings", "SslDistSettings", "SslOptions",
    "WebsocketSettings", "ListenerSettings", "DashboardSettings", "MqttSettings",
    "LogSettings", "ConsoleLogSettings", "FileLogSettings", "SysTopicsSettings",
    "AuthenticationSettings", "AuthorizationSettings",
    "Bind", "parse_bind", "parse_duration", "parse_size",
    "node_name_parts", "node_host", "name_offset", "dist_port", "rpc_port",
    "validate_node_name",
    "DEFAULTS", "LISTENER_DEFAULTS", "DEFAULT_CONFIG_PATH", "DEFAULT_COOKIE",
    "ConfigError",
]
