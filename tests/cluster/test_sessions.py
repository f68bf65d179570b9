"""Cluster-wide client registry and session takeover (issue 6): real nodes, paho clients.

One 3-node cluster (127.0.0.1..3, one offset) is shared by the module; every test uses
its own client ids and topics.
"""

from __future__ import annotations

import asyncio
import resource
import struct
import threading
import time

import pytest

from mqttmesh.config import load_settings
from mqttmesh.mgmt.cluster import call_sync
from tests.cluster.cluster_nodes import ClusterNode, start_cluster, status_of
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
TAKEN_OVER = 0x8E


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory):
    made = start_cluster(tmp_path_factory.mktemp("sessions"), HOSTS,
                         "mqtt.max_mqueue_len = 100000")  # no drop by policy
    try:
        yield made
    finally:
        for node in made:
            node.stop(timeout=5)


def lookup(node: ClusterNode, client_id: str) -> dict:
    settings = load_settings(str(node.config_path), node.environment())
    return call_sync(settings, "client_lookup", {"client_id": client_id})


def client(node: ClusterNode, client_id: str, clean: bool = False, **kw) -> Client:
    return Client(node.port, version=5, client_id=client_id, host=node.host, clean=clean,
                  session_expiry=kw.pop("session_expiry", 300), **kw)


def test_session_follows_the_client_with_queued_qos1_and_qos2(nodes):
    n1, n2, n3 = nodes
    cid, topic = unique("mover"), unique("tk")
    sub = client(n1, cid, clean=True).connect()
    sub.subscribe(f"{topic}/q1/#", qos=1)
    sub.subscribe(f"{topic}/q2/#", qos=2)  # SUBACK waits for the route everywhere
    sub.disconnect()
    pub = Client(n3.port, host=n3.host).connect()
    for i in range(30):
        pub.publish(f"{topic}/q1/{i}", str(i).encode(), qos=1)
        pub.publish(f"{topic}/q2/{i}", str(i).encode(), qos=2)
    pub.close()
    back = client(n2, cid).connect()
    try:
        assert back.session_present  # [MQTT-3.2.2-2]
        got = back.expect_many(60, timeout=15)
        q1 = [m.payload for m in got if "/q1/" in m.topic]
        q2 = [m.payload for m in got if "/q2/" in m.topic]
        assert sorted(set(q1), key=int) == [str(i).encode() for i in range(30)]
        assert sorted(q2, key=int) == [str(i).encode() for i in range(30)]  # exactly once
        back.expect_none(0.3)
        assert lookup(n1, cid)["session"] is False
        for node in nodes:
            assert lookup(node, cid)["registry"][1] == n2.name
    finally:
        back.close()


def test_same_client_id_on_two_nodes_the_older_is_kicked(nodes):
    n1, n2, n3 = nodes
    cid = unique("dup")
    first = client(n1, cid, clean=True, session_expiry=0).connect()
    second = client(n2, cid, clean=True, session_expiry=0).connect()
    try:
        assert first.wait_disconnected(5) == TAKEN_OVER
        assert second.is_connected and not second.session_present
        wait_until(lambda: all(lookup(n, cid)["registry"][1] == n2.name for n in nodes), 5,
                   what="registry says n2 everywhere")
        assert [lookup(n, cid)["connected"] for n in nodes] == [False, True, False]
    finally:
        first.close()
        second.disconnect()
    wait_until(lambda: all(lookup(n, cid)["registry"] is None for n in nodes), 5,
               what="registry entry released everywhere after the session ended")


def test_takeover_receive_maximum_1_one_inflight_two_queued_in_order(nodes):
    n1, n2, n3 = nodes
    cid, topic = unique("rm1"), unique("rm")
    old = client(n1, cid, clean=True, connect_properties={"ReceiveMaximum": 1})
    old.paho.manual_ack_set(True)  # keep the first delivery unacknowledged
    old.connect()
    old.subscribe(f"{topic}/#", qos=1)
    pub = Client(n3.port, host=n3.host).connect()
    for i in range(3):
        pub.publish(f"{topic}/{i}", str(i).encode(), qos=1)
    first = old.expect(timeout=5)
    assert first.payload == b"0"
    old.expect_none(0.3)  # window of 1: the other two wait in the queue on n1
    new = client(n2, cid).connect()
    try:
        assert old.wait_disconnected(5) == TAKEN_OVER
        assert new.session_present
        got = [m.payload for m in new.expect_many(3, timeout=10)]
        assert got == [b"0", b"1", b"2"]
        new.expect_none(0.3)
    finally:
        old.close()
        new.close()
        pub.close()


def test_publish_right_after_suback_on_another_node_is_routed(nodes):
    n1, n2, n3 = nodes
    for attempt in range(5):
        topic = unique("barrier")
        sub = Client(n2.port, host=n2.host).connect()
        pub = Client(n1.port, host=n1.host).connect()
        try:
            sub.subscribe(topic, qos=1)
            pub.publish(topic, b"first", qos=1)
            assert sub.expect(timeout=3).payload == b"first"
        finally:
            sub.close()
            pub.close()


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x00\x00\x3c" + struct.pack("!H", len(cid)) + cid  # clean=0
    return bytes((0x10, len(body))) + body


async def _storm(nodes: list[ClusterNode], client_id: str, count: int) -> list:
    packet = _connect_packet(client_id)

    async def one(i: int):
        node = nodes[i % len(nodes)]
        try:
            reader, writer = await asyncio.open_connection(node.host, node.port)
        except OSError:
            return None
        writer.write(packet)
        return reader, writer

    conns = [c for c in await asyncio.gather(*(one(i) for i in range(count))) if c]

    async def alive(reader: asyncio.StreamReader) -> bool:
        try:
            while True:
                data = await asyncio.wait_for(reader.read(1024), 0.05)
                if not data:
                    return False
        except asyncio.TimeoutError:
            return True
        except OSError:
            return False

    deadline = time.monotonic() + 20
    open_ = conns
    while time.monotonic() < deadline:
        states = await asyncio.gather(*(alive(r) for r, _ in open_))
        for (r, w), ok in zip(open_, states):
            if not ok:
                w.close()
        open_ = [c for c, ok in zip(open_, states) if ok]
        if len(open_) <= 1:
            break
    result = len(open_)
    for _, w in open_:
        w.close()
    return [result, len(conns)]


def _race_size() -> int:
    """2,000 concurrent CONNECTs (issue 6) when this process may hold the sockets, else 300."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4500 and (hard == resource.RLIM_INFINITY or hard >= 4500):
        resource.setrlimit(resource.RLIMIT_NOFILE, (4500, hard))
        soft = 4500
    return 2000 if soft >= 4500 else 300


def test_concurrent_connects_with_one_client_id_leave_one_session(nodes):
    cid = unique("race")
    count = _race_size()
    still_open, made = asyncio.run(_storm(nodes, cid, count))
    assert made == count
    assert still_open == 1, [lookup(n, cid) for n in nodes]

    def settled():
        found = [lookup(n, cid) for n in nodes]
        holders = [n.name for n, f in zip(nodes, found) if f["session"]]
        if len(holders) != 1 or any(f["fetching"] for f in found):
            return False
        return all(f["registry"] is not None and f["registry"][1] == holders[0] for f in found)

    wait_until(settled, 10, interval=0.2, what="one session, registry agrees everywhere")
    clean = client(nodes[0], cid, clean=True, session_expiry=0).connect()
    clean.disconnect()
    wait_until(lambda: all(lookup(n, cid)["registry"] is None and not lookup(n, cid)["session"]
                           for n in nodes), 5, what="no orphaned registry entries")


def test_takeover_under_load_no_message_missing(nodes):
    n1, n2, n3 = nodes
    cid, topic = unique("load"), unique("ld")
    total = 2000
    sub = client(n2, cid, clean=True).connect()
    sub.subscribe(f"{topic}/#", qos=1)
    seen: set[bytes] = set()
    pub = Client(n1.port, host=n1.host).connect()
    done = threading.Event()

    def publish() -> None:
        for i in range(total):
            pub.publish(f"{topic}/x", str(i).encode(), qos=1, wait=(i % 20 == 19))
        done.set()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    path = [n3, n1, n2]
    current = sub
    try:
        for step, node in enumerate(path):
            target = total * (step + 1) // (len(path) + 1)
            deadline = time.monotonic() + 30
            while len(seen) < target and time.monotonic() < deadline:
                seen.update(m.payload for m in current.drain())
                time.sleep(0.005)
            nxt = client(node, cid).connect()
            assert nxt.session_present
            current.wait_disconnected(5)
            seen.update(m.payload for m in current.drain())
            current.close()
            current = nxt
        assert done.wait(60)
        deadline = time.monotonic() + 30
        while len(seen) < total and time.monotonic() < deadline:
            try:
                seen.add(current.expect(timeout=1).payload)
            except AssertionError:
                pass
        missing = sorted(set(str(i).encode() for i in range(total)) - seen, key=int)
        assert not missing, (f"{len(missing)} missing, first {missing[:10]}",
                             [lookup(n, cid)["counters"] for n in nodes])
    finally:
        current.close()
        pub.close()


def test_clean_start_on_another_node_discards_the_session_everywhere(nodes):
    n1, n2, n3 = nodes
    cid, topic = unique("clean"), unique("cl")
    first = client(n1, cid, clean=True).connect()
    first.subscribe(f"{topic}/#", qos=1)
    first.disconnect()
    assert lookup(n1, cid)["session"] is True  # kept offline (expiry 300 s)
    again = client(n2, cid, clean=True).connect()
    try:
        assert not again.session_present  # [MQTT-3.1.2-4]
        assert [lookup(n, cid)["session"] for n in nodes] == [False, True, False]
        pub = Client(n3.port, host=n3.host).connect()
        pub.publish(f"{topic}/x", b"old subscription", qos=1)
        pub.close()
        again.expect_none(0.5)
    finally:
        again.close()


def test_owner_down_new_session_after_a_short_deadline_and_logged(nodes):
    """Last in the module: it kills node 3."""
    n1, n2, n3 = nodes
    cid = unique("orphan")
    held = client(n3, cid, clean=True).connect()
    held.subscribe(unique("o"), qos=1)
    held.disconnect()
    wait_until(lambda: lookup(n1, cid)["registry"] == lookup(n3, cid)["registry"], 5,
               what="n1 knows n3 holds the session")
    n3.kill()
    wait_until(lambda: n3.name in status_of(n1)["stopped_nodes"], 10, what="n3 seen down")
    started = time.monotonic()
    back = client(n1, cid).connect()
    try:
        assert not back.session_present
        assert time.monotonic() - started < 5
        wait_until(lambda: "session held by a node that is down" in n1.log_text(), 5,
                   what="the lost session is logged")
    finally:
        back.close()
