"""The mcast strategy on loopback: 127.0.0.1 as the multicast interface, loop on.

Linux delivers group datagrams between sockets on this host when the sender sets
IP_MULTICAST_IF 127.0.0.1 and IP_MULTICAST_LOOP, and the listener joins the group on
127.0.0.1 — so no network namespace is needed. Each test uses a free UDP port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import subprocess
import sys
import textwrap

import pytest

from mqttmesh.discovery import DiscoveryConfig, DiscoveryLoop, McastConfig, make_strategy
from mqttmesh.discovery.mcast import McastStrategy

from .conftest import eventually, free_port, run

GROUP = "239.192.0.1"


def _strategy(port: int, node: str, cookie: str = "s3cret", cluster: str = "c1") -> McastStrategy:
    config = DiscoveryConfig(strategy="mcast", cluster_name=cluster,
                             mcast=McastConfig(addr=GROUP, ports=(port,), iface="127.0.0.1", ttl=1, loop=True))
    strategy = make_strategy(config, node, cookie)
    assert isinstance(strategy, McastStrategy)
    return strategy


async def _found(strategy: McastStrategy, expected: list[str]) -> None:
    async def check() -> bool:
        return await strategy.discover() == expected
    await eventually(check, timeout=10.0)


def test_three_nodes_find_each_other_and_a_late_joiner_is_found_at_once() -> None:
    port = free_port(socket.SOCK_DGRAM)

    async def body() -> None:
        nodes = ["a@127.0.0.1", "b@127.0.0.2", "c@127.0.0.3"]
        strategies = [_strategy(port, node) for node in nodes]
        for strategy in strategies:
            await strategy.register()
        for strategy, node in zip(strategies, nodes):
            await _found(strategy, sorted(set(nodes) - {node}))
        # the late joiner announces once; members answer at once, so it needs no second round
        late = _strategy(port, "d@127.0.0.4")
        await late.register()
        await _found(late, nodes)
        await _found(strategies[0], ["b@127.0.0.2", "c@127.0.0.3", "d@127.0.0.4"])
        for strategy in [*strategies, late]:
            await strategy.close()
    run(body())


def test_another_cookie_cannot_inject_a_member(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port(socket.SOCK_DGRAM)

    async def body() -> None:
        member = _strategy(port, "a@127.0.0.1")
        friend = _strategy(port, "b@127.0.0.2")
        stranger = _strategy(port, "evil@127.0.0.66", cookie="guessed")
        for strategy in (member, stranger, friend):
            await strategy.register()
        await _found(member, ["b@127.0.0.2"])          # the friend announced after the stranger
        await stranger.register()
        await _found(friend, ["a@127.0.0.1"])
        assert await stranger.discover() == []         # it cannot read us either
        for strategy in (member, friend, stranger):
            await strategy.close()
    run(body())
    assert any("made with a different cookie, or forged" in r.getMessage() for r in caplog.records)
    assert not any("evil@127.0.0.66" in str(r.getMessage()) and "discovered" in r.getMessage() for r in caplog.records)


def test_another_cluster_name_is_dropped_and_said_so(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port(socket.SOCK_DGRAM)

    async def body() -> None:
        ours = _strategy(port, "a@127.0.0.1", cluster="blue")
        friend = _strategy(port, "b@127.0.0.2", cluster="blue")
        theirs = _strategy(port, "x@127.0.0.9", cluster="green")
        for strategy in (ours, theirs, friend):
            await strategy.register()
        await _found(ours, ["b@127.0.0.2"])
        for strategy in (ours, friend, theirs):
            await strategy.close()
    run(body())
    assert "ignoring x@127.0.0.9: it announces cluster 'green', this node is in cluster 'blue'" in [
        r.getMessage() for r in caplog.records]


def test_a_captured_announcement_replayed_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port(socket.SOCK_DGRAM)

    async def body() -> None:
        spy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        spy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        spy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        spy.bind((GROUP, port))
        spy.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                       struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1")))
        spy.settimeout(10)
        listener = _strategy(port, "a@127.0.0.1")
        await listener.discover()                      # listening
        victim = _strategy(port, "b@127.0.0.2")
        await victim.register()
        captured, _ = await asyncio.to_thread(spy.recvfrom, 2048)
        await _found(listener, ["b@127.0.0.2"])
        await victim.close()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        sender.sendto(captured, (GROUP, port))

        async def rejected() -> bool:
            return any("replay" in r.getMessage() for r in caplog.records)
        await eventually(rejected, timeout=10.0)
        sender.close()
        spy.close()
        await listener.close()
    run(body())


def test_two_processes_find_each_other() -> None:
    port = free_port(socket.SOCK_DGRAM)
    script = textwrap.dedent(f"""
        import asyncio, sys
        from mqttmesh.discovery import DiscoveryConfig, McastConfig, make_strategy
        async def main():
            config = DiscoveryConfig(strategy="mcast", cluster_name="c1", mcast=McastConfig(
                addr="{GROUP}", ports=({port},), iface="127.0.0.1", ttl=1, loop=True))
            strategy = make_strategy(config, "p@127.0.0.5", "s3cret")
            while True:
                await strategy.register()
                found = await strategy.discover()
                if found:
                    print(",".join(found), flush=True)
                    break
                await asyncio.sleep(0.05)
            await strategy.close()
        asyncio.run(main())
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        async def body() -> None:
            here = _strategy(port, "a@127.0.0.1")

            async def check() -> bool:
                await here.register()
                return await here.discover() == ["p@127.0.0.5"]
            await eventually(check, timeout=20.0, interval=0.1)
            await here.close()
        run(body())
        out, _ = child.communicate(timeout=20)
        assert out.strip() == "a@127.0.0.1"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def test_the_loop_offers_multicast_neighbours() -> None:
    port = free_port(socket.SOCK_DGRAM)

    async def body() -> None:
        neighbour = _strategy(port, "b@127.0.0.2")
        offered: list[list[str]] = []

        async def on_candidates(names: list[str]) -> None:
            offered.append(names)

        loop = DiscoveryLoop(_strategy(port, "a@127.0.0.1"), on_candidates, interval=0.05)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            await loop.wait_round()
            await neighbour.register()

            async def found() -> bool:
                return bool(offered)
            await eventually(found, timeout=10.0)
            loop.stop()
        assert offered[-1] == ["b@127.0.0.2"]
        await neighbour.close()
    run(body())
