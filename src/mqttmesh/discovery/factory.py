"""Build a strategy from plain values, and those values from Settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mqttmesh.discovery.base import (
    STRATEGIES,
    DiscoveryConfig,
    DiscoveryStrategy,
    DnsConfig,
    EtcdConfig,
    EtcdTls,
    K8sConfig,
    McastConfig,
    StaticConfig,
)
from mqttmesh.errors import DiscoveryError

if TYPE_CHECKING:
    from mqttmesh.config import Settings

__all__ = ["make_strategy", "discovery_config_from_settings", "DNS_NAMESERVERS_ENV"]

DNS_NAMESERVERS_ENV = "MQTTMESH_DISCOVERY_DNS_NAMESERVERS"   # "127.0.0.1:5353,..." (tests)


def make_strategy(config: DiscoveryConfig, node_name: str, cookie: str) -> DiscoveryStrategy:
    """The strategy named by `config.strategy`, for this node.

    Raises:
        DiscoveryError: unknown strategy or unusable settings.
    """
    kind = config.strategy
    if kind == "manual":
        from mqttmesh.discovery.static import ManualStrategy
        return ManualStrategy(node_name)
    if kind == "static":
        from mqttmesh.discovery.static import StaticStrategy
        return StaticStrategy(config.static.seeds, node_name)
    if kind == "dns":
        from mqttmesh.discovery.dns import DnsStrategy
        return DnsStrategy(config.dns, node_name)
    if kind == "etcd":
        from mqttmesh.discovery.etcd import EtcdStrategy
        return EtcdStrategy(config.etcd, node_name, config.cluster_name)
    if kind == "k8s":
        from mqttmesh.discovery.k8s import K8sStrategy
        return K8sStrategy(config.k8s, node_name)
    if kind == "mcast":
        from mqttmesh.discovery.mcast import McastStrategy
        return McastStrategy(config.mcast, node_name, cookie, config.cluster_name)
    raise DiscoveryError(f"unknown cluster.discovery_strategy {kind!r} (expected one of {', '.join(STRATEGIES)})")


def discovery_config_from_settings(settings: Settings, env: Mapping[str, str] | None = None) -> DiscoveryConfig:
    """Plain discovery values from `settings.cluster`.

    The round interval is 5s, shortened for etcd so that the lease (refreshed each round)
    gets at least three keep-alives per `node_ttl`. `env` (default `os.environ`) may set
    `MQTTMESH_DISCOVERY_DNS_NAMESERVERS=host[:port],...` to point the dns strategy at a
    resolver other than the system's (used by tests with dnsmasq).
    """
    cluster = settings.cluster
    env = os.environ if env is None else env
    ssl = cluster.etcd.ssl
    tls = None
    if ssl.enable or any(server.startswith("https:") for server in cluster.etcd.server):
        tls = EtcdTls(
            certfile=ssl.certfile or None,
            keyfile=ssl.keyfile or None,
            cacertfile=ssl.cacertfile or None,
            verify=ssl.verify,
            server_name_indication=ssl.server_name_indication or None,
        )
    nameservers, port = _parse_nameservers(env.get(DNS_NAMESERVERS_ENV, ""))
    interval = 5.0
    if cluster.discovery_strategy == "etcd":
        interval = max(0.5, min(interval, cluster.etcd.node_ttl / 3))
    return DiscoveryConfig(
        strategy=cluster.discovery_strategy,
        cluster_name=cluster.name,
        interval=interval,
        static=StaticConfig(seeds=tuple(cluster.static.seeds)),
        dns=DnsConfig(name=cluster.dns.name, record_type=cluster.dns.record_type,
                      nameservers=nameservers, port=port),
        etcd=EtcdConfig(servers=tuple(cluster.etcd.server), prefix=cluster.etcd.prefix,
                        node_ttl=cluster.etcd.node_ttl, tls=tls),
        k8s=K8sConfig(apiserver=cluster.k8s.apiserver, service_name=cluster.k8s.service_name,
                      address_type=cluster.k8s.address_type, namespace=cluster.k8s.namespace,
                      suffix=cluster.k8s.suffix),
        mcast=McastConfig(addr=cluster.mcast.addr, ports=tuple(cluster.mcast.ports),
                          iface=cluster.mcast.iface, ttl=cluster.mcast.ttl, loop=cluster.mcast.loop),
    )


def _parse_nameservers(text: str) -> tuple[tuple[str, ...], int]:
    servers: list[str] = []
    port = 53
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port_text = item.rpartition(":")
        if sep and host and "]" not in port_text and port_text.isdigit():
            servers.append(host.strip("[]"))
            port = int(port_text)
        else:
            servers.append(item)
    return tuple(servers), port
