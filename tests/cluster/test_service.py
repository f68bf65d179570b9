"""ClusterService in-process (no Node): real sockets on 127.0.0.x, a recording fake broker.

Each test picks a random name offset (100..900) so its distribution/RPC ports (4370/5370 +
offset) do not collide with parallel runs; hosts are distinct loopback addresses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mqttmesh.broker import Message, RetainedStore
from mqttmesh.config import load_settings
from mqttmesh.errors import ClusterError
from mqttmesh.mgmt import cluster as mgmt
from mqttmesh.runtime.cluster_service import ClusterService


class FakeBroker:
    def __init__(self) -> None:
        self.received: list[Message] = []
        self.filters: list[str] = []
        self.retained = RetainedStore()

    def publish(self, service: ClusterService, message: Message) -> None:
        """What Broker.publish does towards the cluster: store if retained, then forward."""
        if message.retain:
            self.retained.set(message)
        service.forward(message)

    def local_filters(self):
        return list(self.filters)

    def dispatch_remote(self, message: Message, now: float) -> int:
        self.received.append(message)
        return 1

    def statistics(self):
        return None


def settings_for(tmp: Path, name: str, cookie: str = "test-cookie", **extra: str):
    env = {
        "MQTTMESH_NODE__NAME": name,
        "MQTTMESH_NODE__COOKIE": cookie,
        "MQTTMESH_NODE__DATA_DIR": str(tmp / name.replace("@", "_")),
    }
    env.update(extra)
    return load_settings(None, env)


def offsets(n: int) -> list[int]:
    """n consecutive name offsets whose cluster ports are free now (see cluster_nodes)."""
    from tests.cluster.cluster_nodes import pick_offset

    base = pick_offset(span=n)
    return [base + i for i in range(n)]


async def wait_for(pred, timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def start(tmp: Path, name: str, **kw: Any) -> tuple[ClusterService, FakeBroker]:
    broker = FakeBroker()
    svc = ClusterService(settings_for(tmp, name, **kw), broker)
    await svc.start()
    return svc, broker


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_join_replicate_forward_leave(tmp_path):
    o = offsets(3)
    a_name, b_name, c_name = (f"a{o[0]}@127.0.0.1", f"b{o[1]}@127.0.0.2",
                              f"c{o[2]}@127.0.0.3")

    async def scenario():
        a, ba = await start(tmp_path, a_name)
        b, bb = await start(tmp_path, b_name)
        c, bc = await start(tmp_path, c_name)
        try:
            b.route_added("sensors/+/temp")
            status = await b.ops.op_join(a_name)
            assert _rs(status) == {"running_nodes": sorted([a_name, b_name]), "stopped_nodes": []}
            await c.ops.op_join(b_name)  # joining through any member
            for svc in (a, b, c):
                await wait_for(lambda svc=svc: len(svc.ops.op_status()["running_nodes"]) == 3,
                               what=f"3 running on {svc.name}")
            assert _rs(a.ops.op_status()) == _rs(b.ops.op_status()) == _rs(c.ops.op_status())
            c.route_added("sensors/#")
            await wait_for(lambda: a.routes.match("sensors/1/temp") == {b_name, c_name},
                           what="routes replicated to a")
            # forward: once per destination node, QoS 1 acked
            msg = Message("sensors/1/temp", b"21", qos=1, sender="pub", sender_node=a_name)
            a.forward(msg)
            a.forward(Message("sensors/2/temp", b"0", qos=0))
            await wait_for(lambda: len(bb.received) == 2 and len(bc.received) == 2,
                           what="forwarded")
            assert [m.payload for m in bb.received] == [b"21", b"0"] or \
                sorted(m.payload for m in bb.received) == [b"0", b"21"]
            await wait_for(lambda: all(box.unacked == 0
                                       for box in a.forwarder.outboxes.values()), what="acks")
            verify = await a.ops.op_routes_verify()
            assert verify["differences"] == [] and len(verify["nodes"]) == 3
            explain = a.ops.op_route_explain("sensors/1/temp")
            assert explain["forward_to"] == sorted([b_name, c_name])
            # leave: c tells everyone; its routes are gone
            await c.ops.op_leave()
            assert c.ops.op_status()["running_nodes"] == [c_name]
            await wait_for(lambda: a.ops.op_status()["running_nodes"] == sorted([a_name, b_name])
                           and b.ops.op_status()["running_nodes"] == sorted([a_name, b_name]),
                           what="c left everywhere")
            assert a.routes.match("sensors/9") == set()
            assert a.routes.match("sensors/1/temp") == {b_name}
            # route removal replicates
            b.route_removed("sensors/+/temp")
            await wait_for(lambda: a.routes.match("sensors/1/temp") == set(), what="removal")
        finally:
            for svc in (a, b, c):
                await svc.stop()

    run(scenario())


def test_join_errors_change_nothing(tmp_path):
    o = offsets(3)
    a_name, b_name = f"a{o[0]}@127.0.0.1", f"b{o[1]}@127.0.0.2"
    nowhere = f"z{o[2]}@127.0.0.3"

    async def scenario():
        a, _ = await start(tmp_path, a_name)
        b, _ = await start(tmp_path, b_name, cookie="other-cookie")
        try:
            with pytest.raises(ClusterError, match="cannot join itself"):
                await a.ops.op_join(a_name)
            with pytest.raises(ClusterError, match="unreachable"):
                await a.ops.op_join(nowhere)
            with pytest.raises(ClusterError, match="wrong cookie"):
                await a.ops.op_join(b_name)
            with pytest.raises(ClusterError, match="invalid node name"):
                await a.ops.op_join("localhost")
            assert _rs(a.ops.op_status()) == {"running_nodes": [a_name], "stopped_nodes": []}
            assert _rs(b.ops.op_status()) == {"running_nodes": [b_name], "stopped_nodes": []}
            with pytest.raises(ClusterError, match="not in a cluster"):
                await a.ops.op_leave()
        finally:
            await a.stop()
            await b.stop()

    run(scenario())


def test_stopped_node_force_leave_and_restart_rejoins(tmp_path):
    o = offsets(3)
    a_name, b_name, c_name = (f"a{o[0]}@127.0.0.1", f"b{o[1]}@127.0.0.2",
                              f"c{o[2]}@127.0.0.3")

    async def scenario():
        a, _ = await start(tmp_path, a_name)
        b, _ = await start(tmp_path, b_name)
        c, _ = await start(tmp_path, c_name)
        try:
            await b.ops.op_join(a_name)
            await c.ops.op_join(a_name)
            await wait_for(lambda: len(b.ops.op_status()["running_nodes"]) == 3)
            # b restarts: it reconnects by itself from cluster.json
            await b.stop()
            await wait_for(lambda: a.ops.op_status()["stopped_nodes"] == [b_name], what="b down")
            b2, _ = await start(tmp_path, b_name)
            await wait_for(lambda: len(b2.ops.op_status()["running_nodes"]) == 3
                           and len(a.ops.op_status()["running_nodes"]) == 3, what="b back")
            # c dies; force-leave it from a; every member forgets it
            await c.stop()
            await wait_for(lambda: c_name in b2.ops.op_status()["stopped_nodes"])
            a.ops.op_force_leave(c_name)
            await wait_for(lambda: _rs(b2.ops.op_status()) == _rs(a.ops.op_status()) ==
                           {"running_nodes": sorted([a_name, b_name]), "stopped_nodes": []},
                           what="force-leave everywhere")
            # c comes back: it learns it was removed and goes standalone
            c2, _ = await start(tmp_path, c_name)
            await wait_for(lambda: c2.ops.op_status()["running_nodes"] == [c_name]
                           and not c2.membership.clustered, what="c standalone")
            await wait_for(lambda: a.ops.op_status()["running_nodes"] == sorted([a_name, b_name]))
            await c2.stop()
            await b2.stop()
        finally:
            await a.stop()

    run(scenario())


def test_identity_and_ports(tmp_path):
    o = offsets(2)
    name = f"a{o[0]}@127.0.0.1"
    s = settings_for(tmp_path, name)
    svc = ClusterService(s, FakeBroker())
    with pytest.raises(ClusterError, match="cannot be bound"):
        ClusterService(settings_for(tmp_path / "other", name), FakeBroker())
    svc._dist_sock.close()
    svc._rpc_sock.close()
    other = settings_for(tmp_path, f"b{o[1]}@127.0.0.1")
    data_dir = Path(s.node.data_dir)
    other = load_settings(None, {"MQTTMESH_NODE__NAME": f"b{o[1]}@127.0.0.1",
                                 "MQTTMESH_NODE__DATA_DIR": str(data_dir)})
    with pytest.raises(ClusterError, match="belongs to node"):
        ClusterService(other, FakeBroker())


def test_ctl_client_status_and_wrong_cookie(tmp_path):
    o = offsets(1)
    name = f"a{o[0]}@127.0.0.1"

    async def scenario():
        a, _ = await start(tmp_path, name)
        try:
            assert _rs(await mgmt.call(settings_for(tmp_path, name), "status")) == \
                {"running_nodes": [name], "stopped_nodes": []}
            with pytest.raises(ClusterError, match="refused this command: wrong cookie"):
                await mgmt.call(settings_for(tmp_path, name, cookie="nope"), "status")
        finally:
            await a.stop()
        with pytest.raises(ClusterError, match="not running or unreachable"):
            await mgmt.call(settings_for(tmp_path, name), "status")

    run(scenario())


def test_garbage_before_auth_is_bounded(tmp_path):
    o = offsets(1)
    name = f"a{o[0]}@127.0.0.1"

    async def scenario():
        a, _ = await start(tmp_path, name)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", a.dist_port)
            chunk = b"\xff" * 65536
            try:
                for _ in range(1600):  # 100 MB if the node kept reading
                    writer.write(chunk)
                    await asyncio.wait_for(writer.drain(), 2)
            except (ConnectionError, asyncio.TimeoutError):
                pass
            writer.close()
            # the node closed the socket quickly; it still answers ctl
            assert a.ops.op_status()["running_nodes"] == [name]
            assert await mgmt.call(settings_for(tmp_path, name), "status")
        finally:
            await a.stop()

    run(scenario())


def test_join_another_cluster_leaves_first_and_autoclean(tmp_path):
    o = offsets(3)
    a_name, b_name, c_name = (f"a{o[0]}@127.0.0.1", f"b{o[1]}@127.0.0.2",
                              f"c{o[2]}@127.0.0.3")

    async def scenario():
        a, _ = await start(tmp_path, a_name, MQTTMESH_CLUSTER__AUTOCLEAN="1s")
        b, _ = await start(tmp_path, b_name, MQTTMESH_CLUSTER__AUTOCLEAN="1s")
        c, _ = await start(tmp_path, c_name)
        try:
            await b.ops.op_join(a_name)
            b.route_added("only/b")
            await wait_for(lambda: a.routes.match("only/b") == {b_name})
            # b joins c's (single-node) cluster: it leaves a's first
            status = await b.ops.op_join(c_name)
            assert status["running_nodes"] == sorted([b_name, c_name])
            await wait_for(lambda: a.ops.op_status()["running_nodes"] == [a_name]
                           and a.routes.match("only/b") == set(), what="a forgot b")
            await wait_for(lambda: c.routes.match("only/b") == {b_name})
            # autoclean: b is removed from c's cluster once down longer than 1 s ...
            # (c has no autoclean; b has): stop c, b removes it
            await c.stop()
            await wait_for(lambda: _rs(b.ops.op_status()) == {"running_nodes": [b_name],
                                                     "stopped_nodes": []},
                           timeout=8, what="autoclean")
            assert not b.membership.clustered
        finally:
            for svc in (a, b, c):
                await svc.stop()

    run(scenario())


def test_routes_barrier_fires_once_peers_hold_the_route(tmp_path):
    o = offsets(2)
    a_name, b_name = f"a{o[0]}@127.0.0.1", f"b{o[1]}@127.0.0.2"

    async def scenario():
        a, _ = await start(tmp_path, a_name)
        b, _ = await start(tmp_path, b_name)
        try:
            assert not b.routes_barrier(lambda: None)  # standalone: nothing to wait for
            await b.ops.op_join(a_name)
            await wait_for(lambda: len(a.ops.op_status()["running_nodes"]) == 2)
            seen = []
            b.route_added("barrier/+")
            assert b.routes_barrier(lambda: seen.append(a.routes.match("barrier/x")))
            await wait_for(lambda: bool(seen), timeout=2)
            assert seen == [{b_name}]
            assert b.barriers.waiting == 0
        finally:
            await a.stop()
            await b.stop()

    run(scenario())


def test_auto_join_rules_for_discovery(tmp_path):
    o = offsets(4)
    # names sort a < b < c; d is never started (unreachable candidate)
    a_name, b_name, c_name = (f"a{o[0]}@127.0.0.1", f"b{o[1]}@127.0.0.2",
                              f"c{o[2]}@127.0.0.3")
    ghost = f"d{o[3]}@127.0.0.3"

    async def scenario():
        a, _ = await start(tmp_path, a_name)
        b, _ = await start(tmp_path, b_name)
        c, _ = await start(tmp_path, c_name)
        try:
            everyone = [a_name, b_name, c_name, ghost]
            # a: every standalone candidate sorts after it: it waits to be joined
            assert await a.ops.auto_join(everyone) is None
            assert await b.ops.auto_join(everyone) == a_name
            # c: a is now in a cluster: joins it (through the join path)
            assert await c.ops.auto_join([ghost, b_name]) == b_name
            await wait_for(lambda: len(a.ops.op_status()["running_nodes"]) == 3)
            # clustered nodes never move; a node that left is not pulled back
            assert await a.ops.auto_join(everyone) is None
            await c.ops.op_leave()
            assert await c.ops.auto_join(everyone) is None
            assert c.ops.op_status()["running_nodes"] == [c_name]
        finally:
            for svc in (a, b, c):
                await svc.stop()

    run(scenario())


def test_ctl_request_longer_than_heartbeat_timeout(tmp_path, monkeypatch):
    o = offsets(1)
    name = f"a{o[0]}@127.0.0.1"

    async def scenario():
        a, _ = await start(tmp_path, name)

        async def slow_verify():
            await asyncio.sleep(6.5)  # longer than HEARTBEAT_TIMEOUT (5 s)
            return {"differences": [], "slow": True}

        monkeypatch.setattr(a.ops, "op_routes_verify", slow_verify)
        try:
            result = await mgmt.call(settings_for(tmp_path, name), "routes_verify")
            assert result == {"differences": [], "slow": True}
        finally:
            await a.stop()

    run(scenario())


def test_retained_replicated_deleted_and_synced_on_join(tmp_path):
    o = offsets(3)
    a_name, b_name, c_name = (f"a{o[0]}@127.0.0.1", f"b{o[1]}@127.0.0.2",
                              f"c{o[2]}@127.0.0.3")

    async def scenario():
        a, ba = await start(tmp_path, a_name)
        b, bb = await start(tmp_path, b_name)
        c, bc = await start(tmp_path, c_name)
        try:
            bb.publish(b, Message("r/b-before-join", b"old", retain=True))
            await b.ops.op_join(a_name)
            assert bb.retained.get("r/b-before-join") is None  # the joiner's store is wiped
            ba.publish(a, Message("r/1", b"one", qos=1, retain=True))
            await wait_for(lambda: bb.retained.get("r/1") is not None, what="replicated")
            assert bb.retained.get("r/1").payload == b"one"
            ba.publish(a, Message("r/2", b"two", retain=True))
            bb.publish(b, Message("r/2", b"", retain=True))  # a later delete on b wins
            await wait_for(lambda: ba.retained.get("r/2") is None
                           and bb.retained.get("r/2") is None, what="delete replicated")
            ba.publish(a, Message("$SYS/brokers/x", b"local", retain=True))
            # c has its own retained messages: joining wipes them and syncs the cluster's
            bc.publish(c, Message("r/c", b"mine", retain=True))
            await c.ops.op_join(b_name)
            await wait_for(lambda: bc.retained.get("r/1") is not None, what="synced")
            assert bc.retained.get("r/c") is None and bc.retained.get("r/2") is None
            assert bc.retained.get("$SYS/brokers/x") is None
            assert {m.topic for m in bc.retained} == {m.topic for m in bb.retained} \
                == {"r/1"}
        finally:
            for svc in (a, b, c):
                await svc.stop()

    run(scenario())


def test_statistics_snapshot(tmp_path):
    o = offsets(1)

    async def scenario():
        a, _ = await start(tmp_path, f"a{o[0]}@127.0.0.1")
        try:
            stats = a.statistics()
            assert stats.running_nodes == 1 and stats.stopped_nodes == 0
            assert stats.forwards_unacked == 0
        finally:
            await a.stop()

    run(scenario())


def _rs(status: dict) -> dict:
    """The SPEC §1 keys of a status answer."""
    return {k: status[k] for k in ("running_nodes", "stopped_nodes")}
