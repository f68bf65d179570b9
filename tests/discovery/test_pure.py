"""Unit tests of discovery's pure parts: naming, Endpoints parsing, signed announcements."""

from __future__ import annotations

import pytest

from mqttmesh.config import load_settings
from mqttmesh.discovery import (
    DiscoveryConfig,
    K8sConfig,
    McastConfig,
    StaticConfig,
    discovery_config_from_settings,
    make_strategy,
    node_name_for_port,
)
from mqttmesh.discovery.etcd_client import prefix_end
from mqttmesh.discovery.k8s import endpoint_hosts
from mqttmesh.discovery.mcast_wire import (
    AnnouncementRejected,
    ReplayGuard,
    decode_announcement,
    encode_announcement,
)
from mqttmesh.errors import DiscoveryError

from .conftest import run


def test_srv_port_picks_the_name_part_by_the_dist_port_rule() -> None:
    assert node_name_for_port("emqx@10.0.0.1", "n1.example.com", 4370) == "emqx@n1.example.com"
    assert node_name_for_port("emqx@10.0.0.1", "h", 4372) == "emqx2@h"
    assert node_name_for_port("emqx-1@10.0.0.1", "h", 4373) == "emqx-3@h"
    assert node_name_for_port("emqx1@10.0.0.1", "h", 4370) == "emqx@h"
    # a port that is not a cluster link port says nothing about the name
    assert node_name_for_port("emqx1@10.0.0.1", "h", 1883) == "emqx1@h"


ENDPOINTS = {
    "kind": "Endpoints",
    "apiVersion": "v1",
    "metadata": {"name": "mqttmesh-headless", "namespace": "prod"},
    "subsets": [{
        "addresses": [
            {"ip": "10.1.2.3", "hostname": "mqttmesh-0", "targetRef": {"kind": "Pod", "name": "mqttmesh-0"}},
            {"ip": "10.1.2.4", "hostname": "mqttmesh-1", "targetRef": {"kind": "Pod", "name": "mqttmesh-1"}},
        ],
        "notReadyAddresses": [{"ip": "10.1.2.5", "hostname": "mqttmesh-2"}],
        "ports": [{"name": "mqtt", "port": 1883, "protocol": "TCP"}],
    }],
}


@pytest.mark.parametrize(("address_type", "suffix", "expected"), [
    ("ip", "pod.cluster.local", ["10.1.2.3", "10.1.2.4"]),
    ("dns", "pod.cluster.local", ["10-1-2-3.prod.pod.cluster.local", "10-1-2-4.prod.pod.cluster.local"]),
    ("dns", "", ["10-1-2-3", "10-1-2-4"]),
    ("hostname", "svc.cluster.local",
     ["mqttmesh-0.mqttmesh-headless.prod.svc.cluster.local", "mqttmesh-1.mqttmesh-headless.prod.svc.cluster.local"]),
])
def test_endpoint_hosts_follow_emqx_address_types(address_type: str, suffix: str, expected: list[str]) -> None:
    config = K8sConfig(service_name="mqttmesh-headless", namespace="prod", address_type=address_type, suffix=suffix)
    assert endpoint_hosts(ENDPOINTS, config) == expected   # notReadyAddresses are not candidates


def test_endpoints_without_subsets_give_nothing() -> None:
    assert endpoint_hosts({"kind": "Endpoints", "subsets": None}, K8sConfig()) == []


def test_announcement_round_trip() -> None:
    data = encode_announcement("a@127.0.0.1", "c1", "secret", 1000.0, "n1")
    got = decode_announcement(data, "secret", 1001.0, ReplayGuard())
    assert (got.node, got.cluster, got.ts) == ("a@127.0.0.1", "c1", 1000.0)


def test_announcement_with_another_cookie_is_refused() -> None:
    data = encode_announcement("evil@127.0.0.1", "c1", "guess", 1000.0, "n1")
    with pytest.raises(AnnouncementRejected, match="different cookie"):
        decode_announcement(data, "secret", 1000.0, ReplayGuard())


def test_tampered_announcement_is_refused() -> None:
    data = encode_announcement("a@127.0.0.1", "c1", "secret", 1000.0, "n1")
    forged = data.replace(b"a@127.0.0.1", b"b@127.0.0.1")
    with pytest.raises(AnnouncementRejected, match="different cookie, or forged"):
        decode_announcement(forged, "secret", 1000.0, ReplayGuard())


def test_replayed_and_stale_announcements_are_refused() -> None:
    guard = ReplayGuard(window=30.0)
    data = encode_announcement("a@127.0.0.1", "c1", "secret", 1000.0, "n1")
    decode_announcement(data, "secret", 1000.5, guard)
    with pytest.raises(AnnouncementRejected, match="replay"):
        decode_announcement(data, "secret", 1001.0, guard)
    with pytest.raises(AnnouncementRejected, match="timestamp"):
        decode_announcement(data, "secret", 1100.0, ReplayGuard(window=30.0))


def test_foreign_datagram_is_marked_foreign() -> None:
    with pytest.raises(AnnouncementRejected) as info:
        decode_announcement(b"M-SEARCH * HTTP/1.1\r\n", "secret", 0.0, ReplayGuard())
    assert info.value.foreign


def test_prefix_end() -> None:
    assert prefix_end(b"abc/") == b"abc0"
    assert prefix_end(b"a\xff") == b"b"


def test_static_excludes_itself_and_duplicates() -> None:
    config = DiscoveryConfig(strategy="static", static=StaticConfig(seeds=("a@h1", "b@h2", "a@h1", "me@h0")))
    strategy = make_strategy(config, "me@h0", "cookie")
    assert run(strategy.discover()) == ["a@h1", "b@h2"]


def test_manual_finds_nothing() -> None:
    strategy = make_strategy(DiscoveryConfig(), "me@h0", "cookie")
    assert run(strategy.discover()) == []
    assert run(strategy.lock()) is True


def test_unknown_strategy_is_an_error() -> None:
    with pytest.raises(DiscoveryError, match="unknown cluster.discovery_strategy 'zk'"):
        make_strategy(DiscoveryConfig(strategy="zk"), "me@h0", "cookie")


def test_config_from_settings_and_env() -> None:
    settings = load_settings(None, {
        "MQTTMESH_CLUSTER__DISCOVERY_STRATEGY": "etcd",
        "MQTTMESH_CLUSTER__STATIC__SEEDS": "[a@127.0.0.1,b@127.0.0.2]",
        "MQTTMESH_CLUSTER__ETCD__SERVER": "http://127.0.0.1:1,http://127.0.0.1:2",
        "MQTTMESH_CLUSTER__ETCD__NODE_TTL": "6s",
        "MQTTMESH_CLUSTER__NAME": "blue",
    })
    config = discovery_config_from_settings(settings, {"MQTTMESH_DISCOVERY_DNS_NAMESERVERS": "127.0.0.1:5354"})
    assert config.strategy == "etcd"
    assert config.cluster_name == "blue"
    assert config.static.seeds == ("a@127.0.0.1", "b@127.0.0.2")
    assert config.etcd.servers == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert config.etcd.node_ttl == 6.0
    assert config.interval == 2.0          # three keep-alives per node_ttl
    assert config.etcd.tls is None
    assert (config.dns.nameservers, config.dns.port) == (("127.0.0.1",), 5354)
    assert config.mcast == McastConfig(addr="239.192.0.1", ports=(4369, 4370), iface="0.0.0.0", ttl=255, loop=True)
