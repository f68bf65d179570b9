"""The `DiscoveryStrategy` seam, its plain-value config, and the pure naming helpers.

Discovery only *finds* candidate node names (`name@host`); joining is the cluster
service's job (the same path as `ctl cluster join`). A strategy is an asyncio adapter:

    register()   make this node findable; idempotent, called again every round to
                 refresh (etcd: keep the lease alive; mcast: announce)
    discover()   the node names found right now (self included or not; the loop drops it)
    lock()/unlock()  serialise joins across nodes (etcd only; others do nothing)
    unregister() stop being findable (on `ctl cluster leave`)
    close()      release sockets and leases

Errors: a backend that cannot answer raises `DiscoveryError` with a sentence a person can
read ("etcd unreachable at http://127.0.0.1:2379: connection refused").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "DiscoveryStrategy",
    "BaseStrategy",
    "DiscoveryConfig",
    "StaticConfig",
    "DnsConfig",
    "EtcdConfig",
    "EtcdTls",
    "K8sConfig",
    "McastConfig",
    "STRATEGIES",
    "name_part",
    "host_part",
    "node_name_for_port",
    "RejectionLog",
]

STRATEGIES = ("manual", "static", "dns", "etcd", "k8s", "mcast")

DIST_BASE_PORT = 4370        # SPEC §3: cluster link port = 4370 + name offset
_MAX_OFFSET = 1000
_SUFFIX = re.compile(r"^(.*?)([-_]?)(\d+)$")


@runtime_checkable
class DiscoveryStrategy(Protocol):
    """What the discovery loop needs from a backend (STYLE rule 10, ekka's behaviour)."""

    name: str          # "static", "etcd", ...
    node_name: str     # this node

    async def discover(self) -> list[str]:
        """Node names (`name@host`) found now. Raises DiscoveryError if the backend fails."""
        ...

    async def register(self) -> None:
        """Make this node findable; idempotent, called each round to refresh."""
        ...

    async def unregister(self) -> None:
        """Stop being findable (the node leaves its cluster)."""
        ...

    async def lock(self) -> bool:
        """Take the cluster-wide join lock; False if another node holds it."""
        ...

    async def unlock(self) -> None:
        """Release the join lock taken by `lock()`."""
        ...

    async def close(self) -> None:
        """Release sockets and leases. The strategy is not used afterwards."""
        ...


class BaseStrategy:
    """No-op register/unregister/lock/unlock/close: static, dns, k8s implement only discover."""

    name = "base"
    node_name = ""

    async def discover(self) -> list[str]:
        return []

    async def register(self) -> None:
        return None

    async def unregister(self) -> None:
        return None

    async def lock(self) -> bool:
        return True

    async def unlock(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class StaticConfig:
    seeds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsConfig:
    name: str = "localhost"
    record_type: str = "a"                 # "a" | "srv"
    nameservers: tuple[str, ...] = ()      # () = the system's resolv.conf
    port: int = 53
    timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class EtcdTls:
    """Client TLS for etcd (`cluster.etcd.ssl.*`)."""

    certfile: str | None = None
    keyfile: str | None = None
    cacertfile: str | None = None
    verify: str = "verify_none"            # "verify_none" | "verify_peer"
    server_name_indication: str | None = None   # None = the URL's host, "disable" = none


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    servers: tuple[str, ...] = ("http://127.0.0.1:2379",)
    prefix: str = "mqttmeshcl"
    node_ttl: float = 60.0
    tls: EtcdTls | None = None             # None = plain http (unless a URL says https)
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class K8sConfig:
    apiserver: str = "https://kubernetes.default.svc:443"
    service_name: str = "mqttmesh-headless"
    address_type: str = "ip"               # "ip" | "dns" | "hostname"
    namespace: str = "default"
    suffix: str = "pod.cluster.local"
    token_path: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    ca_path: str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class McastConfig:
    addr: str = "239.192.0.1"
    ports: tuple[int, ...] = (4369, 4370)
    iface: str = "0.0.0.0"
    ttl: int = 255
    loop: bool = True
    max_age: float = 30.0                  # forget an announcer not heard for this long


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Plain values for discovery, built from Settings by `discovery_config_from_settings`."""

    strategy: str = "manual"
    cluster_name: str = "mqttmeshcl"
    interval: float = 5.0                  # seconds between discovery rounds
    static: StaticConfig = field(default_factory=StaticConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    k8s: K8sConfig = field(default_factory=K8sConfig)
    mcast: McastConfig = field(default_factory=McastConfig)


def name_part(node: str) -> str:
    """`emqx1@host` -> `emqx1`."""
    return node.partition("@")[0]


def host_part(node: str) -> str:
    """`emqx1@host` -> `host`."""
    return node.partition("@")[2]


def node_name_for_port(own_node: str, host: str, port: int) -> str:
    """Name of the node behind an SRV record (target `host`, `port`).

    When `port` is a cluster link port (4370 + offset, SPEC §3) the offset picks the name
    part, built like our own: own `emqx1` / `emqx-1`, port 4372 -> `emqx2` / `emqx-2`,
    port 4370 -> `emqx`. Any other port (MQTT's 1883, say) carries no name: the name
    part is our own, as for A records.
    """
    own = name_part(own_node)
    offset = port - DIST_BASE_PORT
    if not 0 <= offset < _MAX_OFFSET:
        return f"{own}@{host}"
    match = _SUFFIX.match(own)
    base, sep = (match.group(1), match.group(2)) if match else (own, "")
    part = base if offset == 0 else f"{base}{sep}{offset}"
    return f"{part}@{host}"


class RejectionLog:
    """Logs why a discovered node was dropped, once per (node, reason) until it changes.

    Discovery runs every few seconds; saying the same thing each round would drown the log.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._said: dict[str, str] = {}

    def reject(self, who: str, reason: str) -> None:
        if self._said.get(who) != reason:
            self._said[who] = reason
            self._logger.warning("ignoring %s: %s", who, reason)

    def accept(self, who: str) -> None:
        self._said.pop(who, None)
