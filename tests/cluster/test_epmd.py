"""The epmd-mode port mapper in process: Erlang EPMD wire format, registration lifetime,
duplicate names, take-over when the serving node goes (``runtime.epmd``)."""

from __future__ import annotations

import asyncio
import struct

from mqttmesh.runtime import epmd
from tests.helpers.nodes import free_port


def test_alive2_request_bytes_follow_erlang_epmd():
    # erl_dist_protocol: len:16, 120, PortNo:16, NodeType 77, Protocol 0, Highest:16,
    # Lowest:16, Nlen:16, NodeName, Elen:16, Extra
    req = epmd._alive2_req("mqttmesh1", 6370)
    body = bytes([120]) + struct.pack(">HBBHHH", 6370, 77, 0, 6, 5, 9) + b"mqttmesh1" \
        + struct.pack(">H", 0)
    assert req == struct.pack(">H", len(body)) + body


def test_agents_register_lookup_duplicate_and_takeover():
    host, port = "127.0.0.1", free_port("127.0.0.1")

    async def main() -> None:
        a = epmd.EpmdAgent("alpha@127.0.0.1", host, 7001, epmd_port=port)
        b = epmd.EpmdAgent("beta@127.0.0.1", host, 7002, epmd_port=port)
        ta = asyncio.create_task(a.run())
        assert await a.wait_registered(5) and a.serving
        tb = asyncio.create_task(b.run())
        assert await b.wait_registered(5) and not b.serving
        assert await epmd.port_please(host, "alpha@127.0.0.1", port) == 7001
        assert await epmd.port_please(host, "beta@x", port) == 7002
        assert await epmd.port_please(host, "gamma@127.0.0.1", port) is None
        assert await epmd.names(host, port) == {"alpha": 7001, "beta": 7002}
        dup = epmd.EpmdAgent("beta@127.0.0.1", host, 7003, epmd_port=port)
        with_dup = asyncio.create_task(dup.run())
        assert not await dup.wait_registered(0.5)       # the name is taken
        with_dup.cancel()
        ta.cancel()                                     # the serving node goes
        for _ in range(200):
            if b.serving and b.registered.is_set():
                break
            await asyncio.sleep(0.02)
        assert b.serving
        assert await epmd.names(host, port) == {"beta": 7002}
        tb.cancel()
        await asyncio.gather(ta, tb, with_dup, return_exceptions=True)

    asyncio.run(main())


def test_garbage_and_oversized_requests_are_closed():
    host, port = "127.0.0.1", free_port("127.0.0.1")

    async def main() -> None:
        agent = epmd.EpmdAgent("alpha@127.0.0.1", host, 7001, epmd_port=port)
        task = asyncio.create_task(agent.run())
        await agent.wait_registered(5)
        for junk in (b"\xff\xff" + b"x" * 100, b"\x00\x05\x99abcd", b"\x00"):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(junk)
            if junk == b"\x00":
                writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 6) in (b"",)
            writer.close()
        assert await epmd.port_please(host, "alpha@h", port) == 7001
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
