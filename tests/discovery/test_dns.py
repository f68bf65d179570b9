"""The dns strategy against a real dnsmasq on a free loopback port (dnspython pointed at it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from mqttmesh.discovery import DiscoveryConfig, DiscoveryLoop, DnsConfig, make_strategy
from mqttmesh.errors import DiscoveryError

from .conftest import Dnsmasq, eventually, free_port, run


def _strategy(server_port: int, name: str, record_type: str = "a", node: str = "mqttmesh@127.0.0.1"):
    config = DiscoveryConfig(strategy="dns", dns=DnsConfig(name=name, record_type=record_type,
                                                           nameservers=("127.0.0.1",), port=server_port,
                                                           timeout=1.0))
    return make_strategy(config, node, "cookie")


def test_a_records_give_one_node_per_address(dnsmasq: Callable[..., Dnsmasq]) -> None:
    server = dnsmasq("--host-record=nodes.mesh.test,127.0.0.1",
                     "--host-record=nodes.mesh.test,127.0.0.2",
                     "--host-record=nodes.mesh.test,127.0.0.3")
    found = run(_strategy(server.port, "nodes.mesh.test").discover())
    assert found == ["mqttmesh@127.0.0.1", "mqttmesh@127.0.0.2", "mqttmesh@127.0.0.3"]


def test_srv_records_give_targets_and_ports(dnsmasq: Callable[..., Dnsmasq]) -> None:
    server = dnsmasq("--srv-host=_mqttmesh._tcp.mesh.test,n1.mesh.test,4370",
                     "--srv-host=_mqttmesh._tcp.mesh.test,n1.mesh.test,4371",
                     "--srv-host=_mqttmesh._tcp.mesh.test,n2.mesh.test,1883")
    found = run(_strategy(server.port, "_mqttmesh._tcp.mesh.test", "srv", node="emqx@127.0.0.1").discover())
    # 4370 + offset names the node (SPEC §3); 1883 names nothing, so our own name part
    assert found == ["emqx1@n1.mesh.test", "emqx@n1.mesh.test", "emqx@n2.mesh.test"]


def test_a_name_without_records_is_an_empty_answer_logged_once(dnsmasq: Callable[..., Dnsmasq],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mqttmesh.discovery")
    server = dnsmasq("--host-record=other.mesh.test,127.0.0.9", "--local=/mesh.test/")
    strategy = _strategy(server.port, "nodes.mesh.test")
    assert run(strategy.discover()) == []
    assert run(strategy.discover()) == []
    said = [r.getMessage() for r in caplog.records if "no A records" in r.getMessage()]
    assert said == ["DNS name nodes.mesh.test has no A records yet; no nodes found"]


def test_a_resolver_that_does_not_answer_is_a_discovery_error() -> None:
    strategy = _strategy(free_port(), "nodes.mesh.test")   # nothing listens there
    with pytest.raises(DiscoveryError, match="DNS lookup of nodes.mesh.test A"):
        run(strategy.discover())


def test_records_added_later_are_found_by_the_loop(dnsmasq: Callable[..., Dnsmasq]) -> None:
    server = dnsmasq("--local=/mesh.test/")
    server.hosts.write_text("127.0.0.1 nodes.mesh.test\n")
    server.reload()

    async def body() -> None:
        offered: list[list[str]] = []

        async def on_candidates(names: list[str]) -> None:
            offered.append(names)

        strategy = _strategy(server.port, "nodes.mesh.test", node="mqttmesh@127.0.0.1")
        loop = DiscoveryLoop(strategy, on_candidates, interval=0.05)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            stats = await loop.wait_round()
            while stats.rounds < 2:
                stats = await loop.wait_round()
            assert offered == [] and stats.failures == 0          # only ourselves so far
            server.hosts.write_text("127.0.0.1 nodes.mesh.test\n127.0.0.2 nodes.mesh.test\n127.0.0.3 nodes.mesh.test\n")
            server.reload()

            async def three() -> bool:
                return bool(offered) and offered[-1] == ["mqttmesh@127.0.0.2", "mqttmesh@127.0.0.3"]
            await eventually(three, timeout=10.0)
            loop.stop()
    run(body())
