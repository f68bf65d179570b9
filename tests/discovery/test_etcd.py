"""The etcd strategy against a real etcd (Debian etcd-server) started on free loopback ports."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.request

import pytest

from mqttmesh.discovery import DiscoveryConfig, DiscoveryLoop, EtcdConfig, EtcdTls, make_strategy
from mqttmesh.discovery.etcd import EtcdStrategy
from mqttmesh.errors import DiscoveryError

from .conftest import Etcd, eventually, free_port, run


def _strategy(servers: tuple[str, ...], node: str, cluster: str = "c1", ttl: float = 5.0) -> EtcdStrategy:
    config = DiscoveryConfig(strategy="etcd", cluster_name=cluster,
                             etcd=EtcdConfig(servers=servers, prefix="mqttmeshcl", node_ttl=ttl, timeout=2.0))
    strategy = make_strategy(config, node, "cookie")
    assert isinstance(strategy, EtcdStrategy)
    return strategy


def _keys(etcd: Etcd, prefix: str) -> dict[str, dict[str, str]]:
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                       "range_end": base64.b64encode(prefix[:-1].encode() + bytes([ord(prefix[-1]) + 1])).decode()})
    request = urllib.request.Request(f"{etcd.url}/v3/kv/range", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        kvs = json.loads(response.read()).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"])) for kv in kvs}


def test_three_nodes_register_and_find_each_other(etcd: Etcd) -> None:
    async def body() -> None:
        nodes = [f"n{i}@127.0.0.{i}" for i in (1, 2, 3)]
        strategies = [_strategy((etcd.url,), node) for node in nodes]
        for strategy in strategies:
            await strategy.register()
            await strategy.register()          # the refresh is a keep-alive, not a new lease
        for strategy in strategies:
            assert await strategy.discover() == sorted(nodes)
        keys = _keys(etcd, "mqttmeshcl/")
        assert keys["mqttmeshcl/c1/nodes/n2@127.0.0.2"] == {"node": "n2@127.0.0.2", "cluster": "c1"}
        await strategies[1].unregister()       # ctl cluster leave: the key goes at once
        assert await strategies[0].discover() == [nodes[0], nodes[2]]
        for strategy in strategies:
            await strategy.close()
        assert _keys(etcd, "mqttmeshcl/") == {}   # close revokes the lease
    run(body())


def test_a_silent_node_expires_with_its_lease_and_comes_back_on_refresh(etcd: Etcd,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mqttmesh.discovery")

    async def body() -> None:
        watcher = _strategy((etcd.url,), "w@127.0.0.1")
        silent = _strategy((etcd.url,), "s@127.0.0.2", ttl=1.0)
        await silent.register()
        assert await watcher.discover() == ["s@127.0.0.2"]

        async def gone() -> bool:
            return await watcher.discover() == []
        await eventually(gone, timeout=15.0, interval=0.2)   # lease of 1s not refreshed
        await silent.register()                              # keep-alive finds the lease gone
        assert await watcher.discover() == ["s@127.0.0.2"]
        await silent.close()
    run(body())
    assert any("etcd lease of s@127.0.0.2 expired; registering again" in r.getMessage() for r in caplog.records)


def test_a_node_of_another_cluster_is_dropped_and_said_so(etcd: Etcd, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        ours = _strategy((etcd.url,), "a@127.0.0.1", cluster="blue")
        theirs = _strategy((etcd.url,), "x@127.0.0.9", cluster="green")
        await ours.register()
        await theirs.register()
        assert await ours.discover() == ["a@127.0.0.1"]
        assert await ours.discover() == ["a@127.0.0.1"]
        await ours.close()
        await theirs.close()
    run(body())
    said = [r.getMessage() for r in caplog.records if "x@127.0.0.9" in r.getMessage()]
    assert said == ["ignoring x@127.0.0.9: it registered in etcd for cluster 'green', this node is in cluster 'blue'"]


def test_the_join_lock_is_exclusive(etcd: Etcd) -> None:
    async def body() -> None:
        first = _strategy((etcd.url,), "a@127.0.0.1")
        second = _strategy((etcd.url,), "b@127.0.0.2")
        second.lock_wait = 0.3
        assert await first.lock() is True
        assert await first.lock() is True          # re-entrant for its holder
        assert await second.lock() is False
        await second.unlock()                      # not the holder: no effect
        assert await second.lock() is False
        await first.unlock()
        assert await second.lock() is True
        await second.unlock()
        for strategy in (first, second):
            await strategy.close()
    run(body())


def test_failover_to_the_next_server(etcd: Etcd) -> None:
    async def body() -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        strategy = _strategy((dead, etcd.url), "a@127.0.0.1")
        await strategy.register()
        assert await strategy.discover() == ["a@127.0.0.1"]
        await strategy.close()
    run(body())


def test_etcd_down_raises_a_readable_discovery_error(etcd_server: Etcd) -> None:
    async def body() -> None:
        strategy = _strategy((etcd_server.url,), "a@127.0.0.1")
        with pytest.raises(DiscoveryError, match=r"etcd unreachable \(http://127.0.0.1:\d+: connection refused\)"):
            await strategy.discover()
        with pytest.raises(DiscoveryError, match="etcd unreachable"):
            await strategy.register()
        await strategy.close()
    run(body())


def test_loop_retries_while_etcd_is_down_and_finds_the_others_once_it_is_up(
        etcd_server: Etcd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mqttmesh.discovery")

    async def body() -> None:
        other = _strategy((etcd_server.url,), "b@127.0.0.2")
        offered: list[list[str]] = []

        async def on_candidates(names: list[str]) -> None:
            offered.append(names)

        loop = DiscoveryLoop(_strategy((etcd_server.url,), "a@127.0.0.1"), on_candidates,
                             interval=0.05, max_backoff=0.2)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            stats = await loop.wait_round()
            while stats.failures < 2:
                stats = await loop.wait_round()
            assert offered == [] and "etcd unreachable" in (stats.last_error or "")
            await asyncio.to_thread(etcd_server.start)
            await other.register()

            async def found() -> bool:
                return bool(offered)
            await eventually(found, timeout=10.0)
            assert offered[-1] == ["b@127.0.0.2"]
            assert "mqttmeshcl/c1/nodes/a@127.0.0.1" in _keys(etcd_server, "mqttmeshcl/")
            await loop.leave()
        assert "mqttmeshcl/c1/nodes/a@127.0.0.1" not in _keys(etcd_server, "mqttmeshcl/")
        await other.close()
    run(body())
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("etcd unreachable (") and "retrying in 0.05s" in m for m in messages)
    assert any(m.startswith("etcd discovery works again after") for m in messages)
    assert "discovered nodes: b@127.0.0.2" in messages


def test_tls_with_client_certificate_and_sni(etcd_tls: Etcd) -> None:
    assert etcd_tls.tls is not None
    files = etcd_tls.tls

    def strategy(**tls: str | None) -> EtcdStrategy:
        config = EtcdConfig(servers=(etcd_tls.url,), prefix="mqttmeshcl", node_ttl=5.0, timeout=3.0,
                            tls=EtcdTls(**tls))  # type: ignore[arg-type]
        return EtcdStrategy(config, "a@127.0.0.1", "c1")

    async def body() -> None:
        good = strategy(cacertfile=files.ca, certfile=files.client_cert, keyfile=files.client_key,
                        verify="verify_peer")
        await good.register()
        assert await good.discover() == ["a@127.0.0.1"]
        await good.close()
        # a name the certificate does carry, sent as SNI and checked instead of 127.0.0.1
        named = strategy(cacertfile=files.ca, certfile=files.client_cert, keyfile=files.client_key,
                         verify="verify_peer", server_name_indication="etcd.test")
        assert await named.discover() == []
        wrong_name = strategy(cacertfile=files.ca, certfile=files.client_cert, keyfile=files.client_key,
                              verify="verify_peer", server_name_indication="other.test")
        with pytest.raises(DiscoveryError, match="TLS error"):
            await wrong_name.discover()
        no_client_cert = strategy(cacertfile=files.ca, verify="verify_peer")
        with pytest.raises(DiscoveryError, match="etcd unreachable"):
            await no_client_cert.discover()
        unknown_ca = strategy(certfile=files.client_cert, keyfile=files.client_key, verify="verify_peer")
        with pytest.raises(DiscoveryError, match="TLS error"):
            await unknown_ca.discover()
    run(body())
