"""Auto clustering end to end: real node processes form a cluster with no `ctl cluster join`.

Issue 5's proof: per strategy, three nodes started at once form one cluster (status on every
node lists all three) within a deadline and a publish crosses nodes; a fourth node started
later is found; the failure paths (seeds down at start, etcd down at start, wrong cookie).
Nodes are `mqttmesh<offset>@127.0.0.<i>` started through `tests.cluster.cluster_nodes`
(`python -m mqttmesh foreground`), with a random offset per test so parallel
tests do not share ports.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster_nodes import ClusterNode, ctl, pick_offset
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

from .conftest import Dnsmasq, Etcd, free_port

FORM_DEADLINE = 60.0


NodeMaker = Callable[..., ClusterNode]


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[NodeMaker]:
    """`make_node(i, config_text, env=..., start=True)`: node `mqttmesh<o>@127.0.0.<i>`."""
    offset = pick_offset()
    made: list[ClusterNode] = []

    def make(i: int, config: str, env: dict[str, str] | None = None, start: bool = True) -> ClusterNode:
        node = ClusterNode(tmp_path / f"n{i}", name=f"mqttmesh{offset}@127.0.0.{i}",
                           config=config, env=env or {})
        made.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in made:
        node.stop(timeout=5)


def _running(node: ClusterNode) -> list[str] | None:
    import json
    result = ctl(node, "cluster", "status", "--json", timeout=10)
    if result.code != 0:
        return None
    return sorted(json.loads(result.out)["running_nodes"])


def wait_formed(nodes: list[ClusterNode], timeout: float = FORM_DEADLINE) -> None:
    names = sorted(node.name for node in nodes)
    for node in nodes:
        wait_until(lambda node=node: _running(node) == names, timeout,
                   interval=0.5, what=f"{node.name} listing {names} as running")


def assert_cross_node_publish(subscriber_node: ClusterNode, publisher_node: ClusterNode) -> None:
    topic = f"{unique('disco')}/t"
    sub = Client(subscriber_node.port, host=subscriber_node.host).connect()
    pub = Client(publisher_node.port, host=publisher_node.host).connect()
    try:
        sub.subscribe(topic, qos=1)

        def delivered() -> bool:       # the route reaches the publisher's node asynchronously
            pub.publish(topic, b"across", qos=1)
            try:
                return sub.expect(timeout=0.5).payload == b"across"
            except AssertionError:
                return False
        wait_until(delivered, 20, interval=0.1, what="a publish crossing nodes")
    finally:
        sub.disconnect()
        pub.disconnect()


def static_config(seeds: list[str]) -> str:
    quoted = ", ".join(f'"{seed}"' for seed in seeds)
    return f"cluster {{ name = disco, discovery_strategy = static, static.seeds = [{quoted}] }}"


def test_static_seeds_down_then_up_then_a_late_fourth(make_node: NodeMaker) -> None:
    names = [f"mqttmesh{{o}}@127.0.0.{i}" for i in (1, 2, 3)]
    first = make_node(1, "", start=False)
    offset = first.name.split("@")[0].removeprefix("mqttmesh")
    seeds = [name.replace("{o}", offset) for name in names]
    first.extra_config = static_config(seeds)
    first.start()
    assert _running(first) == [first.name]          # seeds all down: standalone
    others = [make_node(i, static_config(seeds), start=False) for i in (2, 3)]
    for node in others:
        node.spawn()
    for node in others:
        node.wait_ready()
    wait_formed([first, *others])
    assert_cross_node_publish(first, others[1])
    late = make_node(4, static_config(seeds))          # knows the seeds; they do not know it
    wait_formed([first, *others, late])


def test_etcd_down_at_start_then_up_and_a_late_fourth(etcd_server: Etcd, make_node: NodeMaker) -> None:
    config = (f'cluster {{ name = disco, discovery_strategy = etcd, '
              f'etcd {{ server = "{etcd_server.url}", prefix = disco, node_ttl = 6s }} }}')
    nodes = [make_node(i, config) for i in (1, 2, 3)]
    assert _running(nodes[0]) == [nodes[0].name]
    etcd_server.start()
    wait_formed(nodes)
    assert_cross_node_publish(nodes[2], nodes[0])
    late = make_node(4, config)
    wait_formed([*nodes, late])
    assert "etcd unreachable" in nodes[0].log_text(tail=None)


def test_dns_a_records_and_a_late_fourth(make_node: NodeMaker, dnsmasq: Callable[..., Dnsmasq]) -> None:
    server = dnsmasq("--local=/disco.test/")
    server.hosts.write_text("".join(f"127.0.0.{i} nodes.disco.test\n" for i in (1, 2, 3)))
    server.reload()
    env = {"MQTTMESH_DISCOVERY_DNS_NAMESERVERS": f"127.0.0.1:{server.port}"}
    config = "cluster { name = disco, discovery_strategy = dns, dns { name = nodes.disco.test, record_type = a } }"
    nodes = [make_node(i, config, env=env) for i in (1, 2, 3)]
    wait_formed(nodes)
    assert_cross_node_publish(nodes[1], nodes[2])
    server.hosts.write_text("".join(f"127.0.0.{i} nodes.disco.test\n" for i in (1, 2, 3, 4)))
    server.reload()
    late = make_node(4, config, env=env)
    wait_formed([*nodes, late])


def test_mcast_on_loopback_and_a_late_fourth(make_node: NodeMaker) -> None:
    port = free_port(socket.SOCK_DGRAM)
    config = (f'cluster {{ name = disco, discovery_strategy = mcast, mcast {{ addr = "239.192.0.1", '
              f'ports = [{port}], iface = "127.0.0.1", ttl = 1, loop = true }} }}')
    nodes = [make_node(i, config) for i in (1, 2, 3)]
    wait_formed(nodes)
    assert_cross_node_publish(nodes[0], nodes[1])
    late = make_node(4, config)
    wait_formed([*nodes, late])


def test_a_seed_with_another_cookie_is_not_joined(make_node: NodeMaker) -> None:
    probe = make_node(1, "", start=False)
    offset = probe.name.split("@")[0].removeprefix("mqttmesh")
    seeds = [f"mqttmesh{offset}@127.0.0.{i}" for i in (1, 2, 3)]
    probe.extra_config = static_config(seeds)
    good = [probe, make_node(2, static_config(seeds), start=False)]
    stranger = make_node(3, static_config(seeds) + '\nnode.cookie = "not-the-cluster-cookie"', start=False)
    for node in (*good, stranger):
        node.spawn()
    for node in (*good, stranger):
        node.wait_ready()
    wait_formed(good)
    assert _running(stranger) == [stranger.name]
    # the link handshake refuses it on both sides and says why (SPEC §4)
    assert "wrong cookie" in stranger.log_text(tail=None)
    assert any("wrong cookie" in node.log_text(tail=None) for node in good)
