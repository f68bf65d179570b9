"""mqttmesh.discovery: find candidate cluster nodes (manual, static, dns, etcd, k8s, mcast).

The cluster service uses three names:

    config = discovery_config_from_settings(settings)
    strategy = make_strategy(config, settings.node.name, settings.node.cookie)
    loop = DiscoveryLoop(strategy, on_candidates, config.interval)
    task_group.create_task(loop.run())        # until loop.stop() / await loop.leave()
"""

from mqttmesh.discovery.base import (
    STRATEGIES,
    BaseStrategy,
    DiscoveryConfig,
    DiscoveryStrategy,
    DnsConfig,
    EtcdConfig,
    EtcdTls,
    K8sConfig,
    McastConfig,
    StaticConfig,
    node_name_for_port,
)
from mqttmesh.discovery.factory import DNS_NAMESERVERS_ENV, discovery_config_from_settings, make_strategy
from mqttmesh.discovery.loop import DiscoveryLoop, DiscoveryStats, OnCandidates
from mqttmesh.errors import DiscoveryError

__all__ = [
    "DiscoveryStrategy", "BaseStrategy", "DiscoveryConfig", "StaticConfig", "DnsConfig",
    "EtcdConfig", "EtcdTls", "K8sConfig", "McastConfig", "STRATEGIES", "node_name_for_port",
    "make_strategy", "discovery_config_from_settings", "DNS_NAMESERVERS_ENV",
    "DiscoveryLoop", "DiscoveryStats", "OnCandidates", "DiscoveryError",
]
