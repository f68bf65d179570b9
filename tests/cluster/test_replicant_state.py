"""Cluster-wide state through replicants: sessions, shared groups, a core leaving, restarts.

Real node processes: 2 cores (127.0.0.1, .2, static discovery) and 2 replicants (.3, .4),
placed by load on different cores, so every exchange between the replicants crosses
replicant -> core -> core -> replicant (relayed links, ``runtime/cluster_relay.py``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from mqttmesh.config import dist_port, load_settings, rpc_port
from mqttmesh.mgmt.cluster import call_sync
from tests.cluster.cluster_nodes import ClusterNode, ctl, retained_on
from tests.cluster.test_replicants import (
    REPLICANT,
    Maker,
    core_of,
    maker,  # noqa: F401  (fixture)
    peek,
    start_roles,
    static_config,
    wait_attached,
    wait_converged,
)
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until
from tests.helpers.partition import Partitioner
from tests.helpers.partition import available as partition_available


def lookup(node: ClusterNode, client_id: str) -> dict:
    settings = load_settings(str(node.config_path), node.environment())
    return call_sync(settings, "client_lookup", {"client_id": client_id})


def roundtrip(pub_node: ClusterNode, sub_node: ClusterNode) -> None:
    """SUBSCRIBE on ``sub_node``, then at once (no waiting: the SUBACK barrier must make it
    work) a QoS 1 publish on ``pub_node``; it must arrive."""
    topic = unique("rt")
    sub = Client(sub_node.port, host=sub_node.host).connect()
    pub = Client(pub_node.port, host=pub_node.host).connect()
    try:
        assert sub.subscribe(topic, qos=1) == [1]
        pub.publish(topic, b"hello", qos=1)
        assert sub.expect(timeout=3).payload == b"hello", \
            f"SUBACK on {sub_node.name}, publish on {pub_node.name}"
    finally:
        sub.close()
        pub.close()


def session_client(node: ClusterNode, client_id: str, clean: bool = False) -> Client:
    return Client(node.port, version=5, client_id=client_id, host=node.host, clean=clean,
                  session_expiry=300)


@pytest.fixture
def four(maker: Maker) -> Iterator[tuple[list[ClusterNode], list[ClusterNode]]]:  # noqa: F811
    cores, replicants = start_roles(maker, 2, 2)
    followed = {core_of(cores[0], r.name) for r in replicants}
    assert followed == {c.name for c in cores}, "the two replicants should be on two cores"
    yield cores, replicants


def test_session_moves_between_replicants_on_different_cores(four) -> None:
    """A persistent session made on replicant A (core 1) is taken over on replicant B
    (core 2) with its subscriptions and the QoS 1 and QoS 2 messages queued meanwhile
    (QoS 2 exactly once); the registry on every node names B; A holds no session."""
    cores, (ra, rb) = four
    cid, topic = unique("mover"), unique("rs")
    first = session_client(ra, cid, clean=True).connect()
    first.subscribe(f"{topic}/q1/#", qos=1)
    first.subscribe(f"{topic}/q2/#", qos=2)
    first.disconnect()
    pub = Client(cores[0].port, host=cores[0].host).connect()
    for i in range(20):
        pub.publish(f"{topic}/q1/{i}", str(i).encode(), qos=1)
        pub.publish(f"{topic}/q2/{i}", str(i).encode(), qos=2)
    pub.close()
    back = session_client(rb, cid).connect()
    try:
        assert back.session_present
        got = back.expect_many(40, timeout=15)
        q1 = [m.payload for m in got if "/q1/" in m.topic]
        q2 = [m.payload for m in got if "/q2/" in m.topic]
        assert sorted(set(q1), key=int) == [str(i).encode() for i in range(20)]
        assert sorted(q2, key=int) == [str(i).encode() for i in range(20)]
        back.expect_none(0.3)
        assert lookup(ra, cid)["session"] is False
        for node in cores + [ra, rb]:
            wait_until(lambda node=node: lookup(node, cid)["registry"][1] == rb.name, 5,
                       what=f"{node.name} registry names {rb.name}")
        # and live traffic now reaches B from the other replicant
        live = Client(ra.port, host=ra.host).connect()
        live.publish(f"{topic}/q1/live", b"live", qos=1)
        assert back.expect(timeout=5).payload == b"live"
        live.close()
    finally:
        back.close()


def test_same_client_id_on_two_replicants_kicks_the_older(four) -> None:
    """One client id connected on replicant A then on replicant B: A's connection is
    closed (takeover through the relays); only B's stays."""
    _, (ra, rb) = four
    cid = unique("dup")
    first = Client(ra.port, version=5, client_id=cid, host=ra.host, session_expiry=0)
    first.connect()
    second = Client(rb.port, version=5, client_id=cid, host=rb.host, session_expiry=0)
    second.connect()
    try:
        assert first.wait_disconnected(5) == 0x8E  # Session taken over
        assert second.is_connected and not second.session_present
        for node in four[0] + [ra, rb]:
            wait_until(lambda node=node: lookup(node, cid)["registry"][1] == rb.name, 5,
                       what=f"{node.name} registry names {rb.name}")
        assert lookup(ra, cid)["connected"] is False and lookup(rb, cid)["connected"]
    finally:
        first.close()
        second.close()


def test_shared_group_over_replicants_delivers_each_message_once(four) -> None:
    """$share/g/T with one member on each replicant and one on a core: 60 QoS 1 messages
    published on the other core reach the group exactly once each, spread over members."""
    cores, (ra, rb) = four
    topic = unique("sh")
    members = [Client(n.port, host=n.host).connect() for n in (ra, rb, cores[0])]
    pub = Client(cores[1].port, host=cores[1].host).connect()
    try:
        for m in members:
            assert m.subscribe(f"$share/g/{topic}", qos=1) == [1]

        def everyone_knows() -> bool:
            for node in cores + [ra, rb]:
                settings = load_settings(str(node.config_path), node.environment())
                groups = call_sync(settings, "shared_list")
                holders = set(groups.get(f"$share/g/{topic}", []))
                if not holders >= {ra.name, rb.name, cores[0].name} - {node.name}:
                    return False
            return True
        wait_until(everyone_knows, 10, interval=0.2, what="shared group known everywhere")
        for i in range(60):
            pub.publish(topic, str(i).encode(), qos=1)
        got: list[bytes] = []

        def all_in() -> bool:
            for m in members:
                got.extend(msg.payload for msg in m.drain())
            return len(got) >= 60
        wait_until(all_in, 15, interval=0.1, what="60 deliveries")
        members[0].expect_none(0.3)  # time for a duplicate to show up
        for m in members:
            got.extend(msg.payload for msg in m.drain())
        counts = Counter(got)
        assert sorted(counts) == sorted(str(i).encode() for i in range(60))
        assert set(counts.values()) == {1}, "a message delivered to two members"
    finally:
        for c in members + [pub]:
            c.close()


def test_core_leaving_moves_its_replicants_to_the_other_core(four) -> None:
    """`ctl cluster leave` on a core: its replicant attaches to the remaining core, every
    remaining node agrees on status, and pub/sub between the replicants still works."""
    cores, (ra, rb) = four
    leaving = next(c for c in cores if core_of(c, ra.name) == c.name)
    staying = next(c for c in cores if c is not leaving)
    result = ctl(leaving, "cluster", "leave")
    assert result.code == 0, result.err
    wait_until(lambda: core_of(ra, ra.name) == staying.name, 15,
               what=f"{ra.name} moved to {staying.name}")
    wait_converged([staying, ra, rb], [staying, ra, rb])
    roundtrip(ra, rb)


def test_restarted_replicant_attaches_again_with_its_data_dir(maker: Maker) -> None:  # noqa: F811
    """A replicant stopped with SIGTERM and started again on the same data dir attaches
    again (its persisted view names the cores even without discovery answering first) and
    routes; it was in stopped_nodes meanwhile."""
    cores, (r,) = start_roles(maker, 2, 1)
    r.stop()
    wait_converged(cores, cores, stopped=[r.name])
    r.start(20)
    wait_attached(r, cores)
    wait_converged(cores + [r], cores + [r])
    roundtrip(cores[0], r)


def test_replicant_with_wrong_cluster_name_stays_alone(maker: Maker) -> None:  # noqa: F811
    """A replicant whose cluster.name differs is refused by the cores (logged), never
    attaches, and its status names only itself."""
    cores, _ = start_roles(maker, 2, 0)
    seeds = [c.name for c in cores]
    stray = maker(3, static_config(seeds, "cluster.name = othercluster\n"), env=REPLICANT)
    wait_until(lambda: "link refused" in stray.log_text(tail=None), 15, what="refusal logged")
    result = ctl(stray, "cluster", "status", "--json")
    assert result.code == 0, result.err
    assert '"running_nodes": ["' + stray.name + '"]' in result.out
    wait_converged(cores, cores)


def test_replicant_to_replicant_routed_right_after_suback(four) -> None:
    """SUBSCRIBE on replicant B (core 2); a QoS 1 publish on replicant A (core 1) sent right
    after the SUBACK is delivered: the route barrier waits for relayed acks (A's ack crosses
    A -> core 1 -> core 2 -> B), both directions, three times."""
    _, (ra, rb) = four
    for _ in range(3):
        roundtrip(ra, rb)
        roundtrip(rb, ra)
    for node in (ra, rb):
        assert "route barrier timed out" not in node.log_text(tail=None)


def _stream_through_failover(cores: list[ClusterNode], pub_node: ClusterNode,
                             sub_node: ClusterNode, victim: ClusterNode) -> None:
    """QoS 1 from ``pub_node`` to ``sub_node`` at ~300 msg/s; ``victim`` (a core between
    them) is killed -9 mid-stream; every message accepted (PUBACK) must arrive."""
    topic = unique("fo")
    sub = Client(sub_node.port, host=sub_node.host, client_id=unique("fosub"), clean=False,
                 session_expiry=300, version=5).connect()
    pub = Client(pub_node.port, host=pub_node.host).connect()
    assert sub.subscribe(f"{topic}/#", qos=1) == [1]
    acked = [0]
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            i = 0
            while not (stop.is_set() and i >= 1500) and i < 20000:
                pub.publish(f"{topic}/m", str(i).encode(), qos=1, timeout=30)
                i += 1
                acked[0] = i
                if i % 30 == 0:
                    stop.wait(0.1)  # pace: ~300 msg/s
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        wait_until(lambda: acked[0] >= 300 or errors, 15, what="the stream to flow")
        victim.kill()
        survivors = [c for c in cores if c is not victim]
        for r in (pub_node, sub_node):
            if r not in cores:
                wait_until(lambda r=r: core_of(r, r.name) == survivors[0].name, 15,
                           what=f"{r.name} failed over")
        stop.set()
        thread.join(90)
        assert not thread.is_alive(), "publisher stuck"
        assert not errors, errors
        total = acked[0]
        got = [int(m.payload) for m in sub.expect_many(total, timeout=30 + total / 300)]
        missing = sorted(set(range(total)) - set(got))
        assert not missing, f"{total} acked, {len(missing)} lost: {missing[:20]}"
    finally:
        stop.set()
        thread.join(10)
        sub.close()
        pub.close()


def test_qos1_not_lost_when_the_publishers_core_dies(four) -> None:
    """Publisher on replicant A, subscriber on replicant B (another core): A's core dies
    mid-stream; A fails over and every acknowledged message still reaches B (SPEC §5: a
    node other than the publisher's and subscriber's died)."""
    cores, (ra, rb) = four
    victim = next(c for c in cores if core_of(c, ra.name) == c.name)
    _stream_through_failover(cores, ra, rb, victim)


def test_qos1_not_lost_when_the_subscribers_core_dies(four) -> None:
    """Publisher on replicant A, subscriber on replicant B: B's core dies mid-stream; B
    fails over and gets every acknowledged message."""
    cores, (ra, rb) = four
    victim = next(c for c in cores if core_of(c, rb.name) == c.name)
    _stream_through_failover(cores, ra, rb, victim)


def test_cores_and_replicants_started_together_form_one_cluster(maker: Maker) -> None:  # noqa: F811
    """2 cores and 3 replicants spawned at the same moment (a replicant may attach to a core
    before the cores have met): they end up as one cluster, every node agreeing, and a
    replicant-to-replicant publish gets through."""
    seeds = [maker.name(1), maker.name(2)]
    config = static_config(seeds)
    nodes = [maker(i, config, env=REPLICANT if i > 2 else None, start=False)
             for i in range(1, 6)]
    for node in nodes:
        node.spawn()
    for node in nodes:
        node.wait_ready(20)
    wait_converged(nodes, nodes, deadline=40)
    roundtrip(nodes[3], nodes[4])


@pytest.mark.skipif(not partition_available(), reason="needs iptables as root")
def test_retained_written_on_a_detached_replicant_reaches_the_cluster(maker: Maker) -> None:  # noqa: F811
    """Replicant A is cut from core Y (iptables) and its core X is killed: A is detached. A
    retained message published on A meanwhile reaches, once the cut heals and A attaches to
    Y, replicant B (attached to Y all along): Y passes on what A's full set brings."""
    cores, (ra, rb) = start_roles(maker, 2, 2)
    x = next(c for c in cores if core_of(c, ra.name) == c.name)
    y = next(c for c in cores if c is not x)
    assert core_of(y, rb.name) == y.name
    topic = unique("detached-retained")
    ports = sorted({f(n.name) for n in cores + [ra, rb] for f in (dist_port, rpc_port)})
    with Partitioner(ports) as cut:
        cut.cut(ra.host, y.host)
        x.kill()
        # (not polled with ctl: from 127.0.0.1 it may be cut too, when Y is 127.0.0.1)
        wait_until(lambda: "core link lost" in ra.log_text(tail=None), 10, interval=0.1,
                   what=f"{ra.name} detached")
        pub = Client(ra.port, host=ra.host).connect()
        pub.publish(topic, b"kept", qos=1, retain=True)
        pub.close()
        assert retained_on(rb, topic) is None  # A reaches nobody yet
        cut.heal()
    wait_until(lambda: core_of(ra, ra.name) == y.name, 20, what=f"{ra.name} attached to Y")
    wait_until(lambda: retained_on(rb, topic) == b"kept", 10,
               what="the retained message on B")
