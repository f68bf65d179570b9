"""Core / replicant roles end to end (issue 9): real node processes, paho clients, ctl, API.

The issue's proof: 2 cores + 3 replicants (separate processes on 127.0.0.1..5): pub/sub across
every pair of roles; kill the core a replicant follows: it fails over and keeps routing; a
replicant joins and leaves under traffic with no loss between the other nodes.

Every node is ``mqttmesh<K>@127.0.0.<i>`` with one offset K per cluster, so every node uses
ports 4370+K / 5370+K on its own address (SPEC §3). Cores cluster by static discovery (seeds =
the cores); replicants (``MQTTMESH_NODE__ROLE=replicant``) get the same seeds and attach to
one core, the one with the fewest replicants. The replicants of a cluster are started one at a
time, each once the previous one is attached, so the load rule has something to see.

One 5-node cluster (plus a late sixth replicant on 127.0.0.6 in the churn test) is shared
by the tests that kill nothing; the destructive tests (failover, grace purge, refusals) start
their own small clusters. Every wait is a condition polled against a deadline; cluster state
is polled with in-process ctl calls (``ctl_call``: the same operations as ``mqttmesh ctl``,
without an interpreter start-up per poll) and asserted with the real ``mqttmesh ctl``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster.cluster_nodes import ClusterNode, ctl, ctl_call, pick_offset_on, retained_on
from tests.helpers import Client, free_port
from tests.helpers.clients import Received, unique
from tests.helpers.nodes import wait_until

HOSTS = tuple(f"127.0.0.{i}" for i in range(1, 7))
REPLICANT = {"MQTTMESH_NODE__ROLE": "replicant"}
FORM_DEADLINE = 30.0     # a discovery round is every 5 s
ATTACH_DEADLINE = 20.0
FAILOVER_DEADLINE = 12.0  # contract: "within ~10 s"


# -- cluster helpers ------------------------------------------------------------------------

def static_config(seeds: list[str], extra: str = "") -> str:
    quoted = ", ".join(f'"{s}"' for s in seeds)
    return (f"cluster {{ discovery_strategy = static, static.seeds = [{quoted}] }}\n"
            "mqtt.max_mqueue_len = 100000\n" + extra)


def peek(node: ClusterNode) -> dict | None:
    """``ctl cluster status --json`` of ``node`` (in process); None while it cannot answer."""
    return ctl_call(node, "status")


def table(status: dict | None) -> dict[str, dict]:
    """The ``nodes`` rows of a status, by name ({} if absent)."""
    if not status or not isinstance(status.get("nodes"), list):
        return {}
    return {row["name"]: row for row in status["nodes"]}


def normalized(status: dict) -> dict:
    return {"running_nodes": sorted(status["running_nodes"]),
            "stopped_nodes": sorted(status["stopped_nodes"]),
            "nodes": sorted((r["name"], r["role"], r["core"], r["status"])
                            for r in status.get("nodes", []))}


def cli_status(node: ClusterNode) -> dict:
    result = ctl(node, "cluster", "status", "--json")
    assert result.code == 0, f"{node.name}: {result.err}"
    return json.loads(result.out)


def core_of(observer: ClusterNode, replicant: str) -> str | None:
    row = table(peek(observer)).get(replicant)
    return row["core"] if row and row["status"] == "running" else None


def wait_attached(replicant: ClusterNode, cores: list[ClusterNode],
                  deadline: float = ATTACH_DEADLINE) -> ClusterNode:
    """Wait until ``replicant`` and the core it names both say it is attached there."""
    by_name = {c.name: c for c in cores}

    def attached() -> ClusterNode | None:
        core = core_of(replicant, replicant.name)
        if core not in by_name:
            return None
        return by_name[core] if core_of(by_name[core], replicant.name) == core else None
    return wait_until(attached, deadline, interval=0.1,
                      what=f"{replicant.name} attached to one of {sorted(by_name)}")


def wait_converged(nodes: list[ClusterNode], running: list[ClusterNode],
                   stopped: list[str] = (), deadline: float = FORM_DEADLINE) -> dict:
    """Wait until every node in ``nodes`` reports the same status, with exactly ``running``
    running and ``stopped`` stopped; returns that status (normalized)."""
    want_running = sorted(n.name for n in running)
    want_stopped = sorted(stopped)
    last: dict = {}

    def same() -> bool:
        seen = [peek(n) for n in nodes]
        if any(s is None for s in seen):
            return False
        views = [normalized(s) for s in seen]
        last["views"] = {n.name: v for n, v in zip(nodes, views)}
        return (all(v == views[0] for v in views)
                and views[0]["running_nodes"] == want_running
                and views[0]["stopped_nodes"] == want_stopped)
    try:
        wait_until(same, deadline, interval=0.1,
                   what=f"every node: running {want_running}, stopped {want_stopped}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last views: {last.get('views')}") from None
    return last["views"][nodes[0].name]


def routes_of(node: ClusterNode) -> dict[str, list[str]]:
    result = ctl_call(node, "routes_list")
    return dict(result["routes"]) if result else {}


def forward_to(node: ClusterNode, topic: str) -> list[str] | None:
    result = ctl_call(node, "route_explain", {"topic": topic})
    return None if result is None else sorted(result["forward_to"])


def links_of(node: ClusterNode) -> set[str]:
    """Hosts at the other end of ``node``'s established TCP connections on the cluster ports
    (distribution 4370+K, RPC 5370+K; either end), from /proc: who it is linked to. (A ctl
    call from this process shows up as 127.0.0.1 while it lasts.)"""
    assert node.proc is not None
    k = int(node.name.split("@")[0].removeprefix("mqttmesh"))
    ports = {4370 + k, 5370 + k}
    inodes = set()
    fd_dir = f"/proc/{node.proc.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])

    def decode(field_: str) -> tuple[str, int]:
        addr, port = field_.split(":")
        return socket.inet_ntoa(struct.pack("<I", int(addr, 16))), int(port, 16)
    peers = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[3] != "01" or parts[9] not in inodes:  # 01 = ESTABLISHED
                continue
            (_, lport), (rhost, rport) = decode(parts[1]), decode(parts[2])
            if lport in ports or rport in ports:
                peers.add(rhost)
    return peers


def wait_links(node: ClusterNode, hosts: set[str], deadline: float = 5.0) -> None:
    """Wait until ``node``'s cluster connections go to exactly ``hosts``."""
    try:
        wait_until(lambda: links_of(node) == hosts, deadline, interval=0.1)
    except AssertionError:
        raise AssertionError(f"{node.name} should be linked to {sorted(hosts)} only, "
                             f"has cluster connections with {sorted(links_of(node))}") from None


def kill9(node: ClusterNode) -> None:
    node.kill()  # SIGKILL, wait for the exit


def collect(client: Client, n: int, prefix: str, timeout: float = 10.0) -> list[Received]:
    """The next ``n`` messages whose topic starts with ``prefix`` (others skipped)."""
    deadline = time.monotonic() + timeout
    got: list[Received] = []
    while len(got) < n:
        msg = client.expect(timeout=max(deadline - time.monotonic(), 0.001))
        if msg.topic.startswith(prefix):
            got.append(msg)
    return got


def wait_delivered(pub: Client, sub: Client, topic: str, deadline: float = 15.0) -> None:
    """Publish probes on ``topic`` until one reaches ``sub`` (routes converge
    asynchronously after a failover)."""
    def through() -> bool:
        pub.publish(topic, b"probe", qos=1)
        try:
            sub.expect(timeout=0.3, topic=topic)
            return True
        except AssertionError:
            return False
    wait_until(through, deadline, interval=0.0, what=f"a publish on {topic} to get through")


@dataclass
class Maker:
    """Makes nodes ``mqttmesh<offset>@127.0.0.<i>`` under ``base``; stops them all at the end."""
    base: Path
    offset: int
    made: list[ClusterNode] = field(default_factory=list)

    def name(self, i: int) -> str:
        return f"mqttmesh{self.offset}@127.0.0.{i}"

    def __call__(self, i: int, config: str = "", env: dict[str, str] | None = None,
                 start: bool = True, tag: str = "") -> ClusterNode:
        node = ClusterNode(self.base / f"n{i}{tag}", name=self.name(i), config=config,
                           env=env or {})
        self.made.append(node)
        if start:
            node.start(20)
        return node

    def stop_all(self) -> None:
        for node in self.made:
            node.stop(timeout=5)


@pytest.fixture
def maker(tmp_path: Path) -> Iterator[Maker]:
    m = Maker(tmp_path, pick_offset_on(HOSTS[:5]))
    yield m
    m.stop_all()


def start_roles(make: Maker, n_cores: int, n_replicants: int, extra: str = "",
                env: dict[str, str] | None = None
                ) -> tuple[list[ClusterNode], list[ClusterNode]]:
    """Cores on 127.0.0.1..n_cores (static seeds = the cores), then replicants on the next
    addresses, one at a time, each once the previous one is attached."""
    seeds = [make.name(i) for i in range(1, n_cores + 1)]
    config = static_config(seeds, extra)
    cores = [make(i, config, env=env) for i in range(1, n_cores + 1)]
    wait_converged(cores, cores)
    replicants = []
    for i in range(n_cores + 1, n_cores + n_replicants + 1):
        r = make(i, config, env={**(env or {}), **REPLICANT})
        wait_attached(r, cores)
        replicants.append(r)
    wait_converged(cores + replicants, cores + replicants)
    return cores, replicants


# -- the shared 5-node cluster --------------------------------------------------------------

class Api:
    """The HTTP API of one node (login admin/public, GET)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.token = host, port, ""

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, json.dumps(body).encode() if body else None, headers)
            res = conn.getresponse()
            return res.status, res.read()
        finally:
            conn.close()

    def get(self, path: str):
        if not self.token:
            status, body = self._request("POST", "/api/v5/login",
                                         {"username": "admin", "password": "public"})
            assert status == 200, body
            self.token = json.loads(body)["token"]
        status, body = self._request("GET", path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)


@dataclass
class Five:
    make: Maker
    cores: list[ClusterNode]
    replicants: list[ClusterNode]
    apis: dict[str, Api]
    seeds: list[str]

    @property
    def nodes(self) -> list[ClusterNode]:
        return self.cores + self.replicants

    @property
    def names(self) -> list[str]:
        return sorted(n.name for n in self.nodes)

    def core_map(self) -> dict[str, str]:
        """replicant -> its core, as the first core sees it."""
        return {r.name: core_of(self.cores[0], r.name) for r in self.replicants}

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)


GRACE = "3s"


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Five]:
    """2 cores (127.0.0.1, .2) + 3 replicants (.3, .4, .5), HTTP API on every node, a short
    replicant route grace (the churn test's replicant is purged before the module ends)."""
    base = tmp_path_factory.mktemp("replicants")
    make = Maker(base, pick_offset_on(HOSTS))  # .6: the churn test's late replicant
    apis: dict[str, Api] = {}

    def dashboard(host: str, name: str) -> str:
        port = free_port(host)
        apis[name] = Api(host, port)
        return ("dashboard.listeners.http.enable = true\n"
                f'dashboard.listeners.http.bind = "{host}:{port}"\n')

    seeds = [make.name(1), make.name(2)]
    try:
        cores = []
        for i in (1, 2):
            cores.append(make(i, static_config(
                seeds, f"cluster.replicant_route_grace = {GRACE}\n"
                + dashboard(f"127.0.0.{i}", make.name(i)))))
        wait_converged(cores, cores)
        replicants = []
        for i in (3, 4, 5):
            r = make(i, static_config(seeds, dashboard(f"127.0.0.{i}", make.name(i))),
                     env={**REPLICANT, "MQTTMESH_CLUSTER__REPLICANT_ROUTE_GRACE": GRACE})
            wait_attached(r, cores)
            replicants.append(r)
        wait_converged(cores + replicants, cores + replicants)
    except BaseException:
        make.stop_all()
        raise
    yield Five(make, cores, replicants, apis, seeds)
    make.stop_all()


def test_status_same_on_every_node_roles_cores_and_spread(five: Five) -> None:
    """`ctl cluster status --json` (the real CLI) gives one answer on all 5 nodes: all
    running, none stopped, cores with role core and no core, replicants with role replicant
    following a core; the 3 replicants are spread over both cores (fewest replicants first)
    and each has cluster connections with its core's address only.
    The human form prints the EMQX line and the `Replicants: #{...}` line."""
    with ThreadPoolExecutor(len(five.nodes)) as pool:  # one ctl process per node, at once
        answers = dict(zip(five.names, pool.map(cli_status, sorted(
            five.nodes, key=lambda n: n.name))))
        humans = list(pool.map(lambda n: ctl(n, "cluster", "status"), five.nodes))
    views = {name: normalized(s) for name, s in answers.items()}
    first = views[five.cores[0].name]
    for name, view in views.items():
        assert view == first, f"{name} differs: {view} vs {first}"
    assert first["running_nodes"] == five.names
    assert first["stopped_nodes"] == []
    rows = table(answers[five.cores[0].name])
    assert sorted(rows) == five.names
    core_names = {c.name for c in five.cores}
    for core in five.cores:
        row = rows[core.name]
        assert (row["role"], row["core"], row["status"]) == ("core", None, "running"), row
    for r in five.replicants:
        row = rows[r.name]
        assert (row["role"], row["status"]) == ("replicant", "running"), row
        assert row["core"] in core_names, row
    followed = {rows[r.name]["core"] for r in five.replicants}
    assert followed == core_names, f"replicants not spread by load: {five.core_map()}"
    for r in five.replicants:  # a replicant links to its core and to no other node
        host = rows[r.name]["core"].split("@")[1]
        wait_links(r, {host})
    # human output
    running = ",".join(f"'{n}'" for n in five.names)
    expected_first = f"Cluster status: #{{running_nodes => [{running}], stopped_nodes => []}}"
    expected_map = {r.name: rows[r.name]["core"] for r in five.replicants}
    for result in humans:
        assert result.code == 0, result.err
        lines = result.out.strip().splitlines()
        assert lines[0] == expected_first, lines
        assert len(lines) == 2, lines
        assert re.fullmatch(r"Replicants: #\{'[^']+' => '[^']+'(, '[^']+' => '[^']+')*\}",
                            lines[1]), lines[1]
        assert dict(re.findall(r"'([^']+)' => '([^']+)'", lines[1])) == expected_map


def test_pubsub_across_every_ordered_pair_of_nodes(five: Five) -> None:
    """5x5 (same node included), QoS 1, one topic per (publisher node, subscriber node):
    every subscriber gets exactly the 5 messages meant for it, once each. Routes are awaited
    in every node's table first, so this checks routing, not the SUBACK barrier."""
    nodes = five.nodes
    prefix = unique("pairs")
    topic = lambda i, j: f"{prefix}/{i}-{j}"  # noqa: E731
    subs = [Client(n.port, host=n.host).connect() for n in nodes]
    pubs = [Client(n.port, host=n.host).connect() for n in nodes]
    try:
        for j, sub in enumerate(subs):
            codes = sub.subscribe([(topic(i, j), 1) for i in range(len(nodes))])
            assert codes == [1] * len(nodes)

        def routed_everywhere() -> bool:
            for holder in nodes:
                table_ = routes_of(holder)
                for i in range(len(nodes)):
                    for j, target in enumerate(nodes):
                        if target is holder:
                            continue
                        if table_.get(topic(i, j)) != [target.name]:
                            return False
            return True
        wait_until(routed_everywhere, 10, interval=0.1,
                   what="every node routes every pair's topic to its subscriber's node only")
        for i, pub in enumerate(pubs):
            for j in range(len(nodes)):
                pub.publish(topic(i, j), f"{nodes[i].name}->{nodes[j].name}", qos=1)
        for j, sub in enumerate(subs):
            got = sub.expect_many(len(nodes), timeout=10)
            assert sorted((m.topic, m.payload) for m in got) == sorted(
                (topic(i, j), f"{nodes[i].name}->{nodes[j].name}".encode())
                for i in range(len(nodes))), nodes[j].name
            assert all(m.qos == 1 for m in got)
        subs[0].expect_none(0.5)  # duplicates get 0.5 s to show up on any subscriber
        for sub in subs[1:]:
            assert sub.drain() == [], "a duplicate delivery"
    finally:
        for c in subs + pubs:
            c.close()


def test_subscribe_on_replicant_routed_right_after_suback(five: Five) -> None:
    """The route barrier holds for replicants: a SUBSCRIBE on a replicant, then a QoS 1
    publish on either core sent right after the SUBACK (no waiting loop) is delivered; on
    each replicant, from its own core and from the other core, twice."""
    pubs = {c.name: Client(c.port, host=c.host).connect() for c in five.cores}
    try:
        for attempt in range(2):
            for r in five.replicants:
                for core in five.cores:
                    t = unique("barrier")
                    sub = Client(r.port, host=r.host).connect()
                    try:
                        assert sub.subscribe(t, qos=1) == [1]
                        pubs[core.name].publish(t, b"first", qos=1)
                        msg = sub.expect(timeout=3)
                        assert (msg.topic, msg.payload) == (t, b"first"), \
                            f"SUBACK on {r.name}, publish on {core.name}"
                    finally:
                        sub.close()
    finally:
        for c in pubs.values():
            c.close()


def test_retained_set_on_replicant_reaches_other_replicant_and_core(five: Five) -> None:
    """A retained message published on a replicant is received by a new subscriber on a
    replicant of the other core and on the core the publishing replicant does not follow;
    clearing it (empty retained) clears it there too."""
    cores = five.core_map()
    r1 = five.replicants[0]
    other_r = next(r for r in five.replicants[1:] if cores[r.name] != cores[r1.name])
    other_core = next(c for c in five.cores if c.name != cores[r1.name])
    t = f"{unique('ret')}/state"
    pub = Client(r1.port, host=r1.host).connect()
    try:
        pub.publish(t, b"kept", qos=1, retain=True)
        for node in (other_r, other_core):
            wait_until(lambda node=node: retained_on(node, t) == b"kept", 10, interval=0.0,
                       what=f"retained message on {node.name}")
        got = Client(r1.port, host=r1.host).connect()
        try:
            got.subscribe(t, qos=1)
            msg = got.expect(timeout=3)
            assert (msg.payload, msg.retain) == (b"kept", True)
        finally:
            got.close()
        pub.publish(t, b"", qos=1, retain=True)
        for node in (other_r, other_core):
            wait_until(lambda node=node: retained_on(node, t) is None, 10, interval=0.0,
                       what=f"retained message cleared on {node.name}")
    finally:
        pub.close()


def test_topology_api_on_core_and_replicant(five: Five) -> None:
    """GET /api/v5/cluster/topology (EMQX 5 shape) on a core and on a replicant: one entry
    per core with its replicants, matching `ctl cluster status`."""
    rows = table(cli_status(five.cores[0]))
    expected = {c.name: sorted(r.name for r in five.replicants if rows[r.name]["core"] == c.name)
                for c in five.cores}
    for node in (five.cores[1], five.replicants[0]):
        answer = five.apis[node.name].get("/api/v5/cluster/topology")
        assert isinstance(answer, list), answer
        got = {}
        for entry in answer:
            assert set(entry) >= {"core_node", "replicant_nodes"}, entry
            assert all("node" in r for r in entry["replicant_nodes"]), entry
            got[entry["core_node"]] = sorted(r["node"] for r in entry["replicant_nodes"])
        got = {core: rs for core, rs in got.items() if rs or core in expected}
        assert got == expected, f"{node.name}: {answer}"


def test_replicant_joins_and_leaves_under_traffic_no_loss_between_others(five: Five) -> None:
    """A QoS 1 publisher on one core streams >= 2,000 messages to a subscriber on a replicant
    of the other core while a 4th replicant (127.0.0.6) is started, attaches, routes (its own
    subscriber gets the stream), and is killed -9: the subscriber gets every message once, in
    order. Afterwards the killed replicant is stopped, then purged after the grace (3 s) on
    every node, status and routes."""
    cores = five.core_map()
    pub_core = five.cores[0]
    sub_r = next(r for r in five.replicants if cores[r.name] != pub_core.name)
    t = unique("churn")
    sub = Client(sub_r.port, host=sub_r.host).connect()
    pub = Client(pub_core.port, host=pub_core.host).connect()
    sub.subscribe(f"{t}/#", qos=1)
    sent = [0]
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            i = 0
            while i < 50000 and not (stop.is_set() and i >= 2000):
                pub.publish(f"{t}/m", str(i).encode(), qos=1)
                i += 1
                sent[0] = i
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=publish, daemon=True)
    late = None
    late_sub = None
    try:
        thread.start()
        wait_until(lambda: sent[0] >= 200 or errors, 10, what="the stream to flow")
        late = five.make(6, static_config(five.seeds), env={
            **REPLICANT, "MQTTMESH_CLUSTER__REPLICANT_ROUTE_GRACE": GRACE}, tag="late")
        wait_attached(late, five.cores)
        wait_converged(five.nodes + [late], five.nodes + [late], deadline=15)
        late_sub = Client(late.port, host=late.host).connect()
        late_sub.subscribe(f"{t}/#", qos=1)
        assert late_sub.expect(timeout=5).topic == f"{t}/m"  # it routes: the stream reaches it
        kill9(late)  # with its subscriber connected
        assert not errors, errors
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "publisher stuck"
        assert not errors, errors
        total = sent[0]
        got = [int(m.payload) for m in sub.expect_many(total, timeout=30 + total / 500)]
        firsts = list(dict.fromkeys(got))  # QoS 1: a duplicate would be allowed, a gap not
        assert firsts == list(range(total)), (
            f"{total} sent, {len(set(got))} distinct received, missing "
            f"{sorted(set(range(total)) - set(got))[:20]}, order ok: {firsts == sorted(firsts)}")
        sub.expect_none(0.3)
    finally:
        stop.set()
        thread.join(10)
        for c in (sub, pub, late_sub):
            if c is not None:
                c.close()
        if late is not None:
            late.kill()
    # the killed replicant: stopped, then purged everywhere after the grace
    wait_converged(five.nodes, five.nodes, deadline=20)
    assert all(late.name not in table(peek(n)) for n in five.nodes)

    def no_routes_of_late() -> bool:
        return all(late.name not in holders for n in five.nodes
                   for holders in routes_of(n).values())
    wait_until(no_routes_of_late, 10, interval=0.1, what="the purged replicant's routes gone")


# -- destructive: own clusters --------------------------------------------------------------

def test_failover_when_the_followed_core_dies_then_it_rejoins(maker: Maker) -> None:
    """2 cores + 2 replicants (one per core). The core that replicant R follows is killed
    -9: every live node shows it stopped and R following the other core within ~10 s; the
    subscriptions made before the kill keep working both ways (R <-> surviving core, R <->
    the other replicant), exactly, and a new SUBSCRIBE on R is routed right after its SUBACK.
    The killed core restarts and rejoins by itself: all four running everywhere."""
    cores, (r, r2) = start_roles(maker, 2, 2)
    victim = next(c for c in cores if c.name == core_of(r, r.name))
    survivor = next(c for c in cores if c is not victim)
    assert core_of(r2, r2.name) == survivor.name, "second replicant not on the other core"
    p = unique("fo")
    at = {n.name: Client(n.port, host=n.host).connect() for n in (r, survivor, r2)}
    pubs = {n.name: Client(n.port, host=n.host).connect() for n in (r, survivor, r2)}
    try:
        for name, c in at.items():
            c.subscribe(f"{p}/to/{name}/#", qos=1)
        pairs = [(survivor, r), (r2, r), (r, survivor), (r, r2)]
        for src, dst in pairs:  # all routed before the kill
            wait_delivered(pubs[src.name], at[dst.name], f"{p}/to/{dst.name}/probe0", 10)
        kill9(victim)
        live = [survivor, r, r2]

        def failed_over() -> bool:
            return all(core_of(n, r.name) == survivor.name for n in live)
        wait_until(failed_over, FAILOVER_DEADLINE, interval=0.1,
                   what=f"{r.name} following {survivor.name} on every live node")
        view = wait_converged(live, live, stopped=[victim.name], deadline=10)
        wait_links(r, {survivor.host})
        assert (victim.name, "core", None, "stopped") in view["nodes"], view
        for src, dst in pairs:
            wait_delivered(pubs[src.name], at[dst.name], f"{p}/to/{dst.name}/probe1", 15)
        for c in at.values():
            c.drain()
        for src, dst in pairs:
            for i in range(20):
                pubs[src.name].publish(f"{p}/to/{dst.name}/data/{src.name}", str(i), qos=1)
        for dst in (r, survivor, r2):
            senders = [s.name for s, d in pairs if d is dst]
            got = collect(at[dst.name], 20 * len(senders), f"{p}/to/{dst.name}/data/")
            for s in senders:
                mine = [int(m.payload) for m in got if m.topic.endswith("/" + s)]
                assert mine == list(range(20)), f"{s} -> {dst.name} after failover: {mine}"
        fresh = Client(r.port, host=r.host).connect()
        try:
            t = unique("after")
            fresh.subscribe(t, qos=1)
            pubs[survivor.name].publish(t, b"now", qos=1)
            assert fresh.expect(timeout=3).payload == b"now"
        finally:
            fresh.close()
        # the killed core comes back and rejoins on its own
        victim.start(20)
        everyone = cores + [r, r2]
        wait_converged(everyone, everyone, deadline=30)
        back = Client(victim.port, host=victim.host).connect()
        try:
            wait_delivered(back, at[r.name], f"{p}/to/{r.name}/probe2", 15)
        finally:
            back.close()
    finally:
        for c in list(at.values()) + list(pubs.values()):
            c.close()


def test_replicant_with_manual_strategy_refused_at_startup(maker: Maker) -> None:
    """node.role = replicant with cluster.discovery_strategy = manual: the process exits
    non-zero at start-up, saying why (naming node.role and the strategy)."""
    node = maker(1, env={**REPLICANT, "MQTTMESH_CLUSTER__DISCOVERY_STRATEGY": "manual"},
                 start=False)
    node.spawn()
    code = node.wait_exit(15)
    assert code != 0
    log = node.log_text(tail=None)
    assert "node.role" in log, log
    assert "manual" in log, log
    assert not node.pid_file.exists()


def test_join_refused_on_and_to_a_replicant_and_wrong_cookie_replicant_alone(
        maker: Maker) -> None:
    """One core + one attached replicant R, a standalone core S (manual), a replicant with
    another cookie. `ctl cluster join S` run on R fails (one line on stderr mentioning
    "replicant"); `ctl cluster join R` run on S fails ("is a replicant"); nothing changes.
    The wrong-cookie replicant is not attached: it stays alone and "wrong cookie" is logged
    on both sides."""
    (core,), (r,) = start_roles(maker, 1, 1)
    standalone = maker(3)  # a core of its own, manual discovery
    stranger = maker(4, static_config([core.name]), start=False,
                     env={**REPLICANT, "MQTTMESH_NODE__COOKIE": "not-the-cluster-cookie"})
    stranger.start(20)
    before = normalized(cli_status(core))

    joined = ctl(r, "cluster", "join", standalone.name)
    assert joined.code != 0, joined.out
    assert len(joined.err.strip().splitlines()) == 1, joined.err
    assert "replicant" in joined.err, joined.err

    joined = ctl(standalone, "cluster", "join", r.name)
    assert joined.code != 0, joined.out
    assert len(joined.err.strip().splitlines()) == 1, joined.err
    assert "is a replicant" in joined.err, joined.err

    wait_until(lambda: "wrong cookie" in stranger.log_text(tail=None), 15, interval=0.1,
               what="the wrong-cookie replicant logging the refusal")
    wait_until(lambda: "wrong cookie" in core.log_text(tail=None), 5, interval=0.1,
               what="the core logging the refusal")
    assert cli_status(stranger)["running_nodes"] == [stranger.name]
    assert cli_status(standalone)["running_nodes"] == [standalone.name]
    for node in (core, r):
        assert normalized(cli_status(node)) == before
    assert table(cli_status(r))[r.name]["core"] == core.name


def test_killed_replicant_purged_after_grace_dead_core_kept(maker: Maker) -> None:
    """3 cores + 1 replicant R, replicant_route_grace = 6s. Kill -9 a core R does not follow,
    then R: R shows in stopped_nodes on the live cores and its route is not used (route
    explain forwards nowhere); after the grace R is gone from status and from every route
    table on both live cores, while the dead core (dead for longer) is still in
    stopped_nodes: the grace does not apply to cores. With no replicant left, the human
    status has no `Replicants:` line."""
    grace_env = {"MQTTMESH_CLUSTER__REPLICANT_ROUTE_GRACE": "6s"}
    cores, (r,) = start_roles(maker, 3, 1, env=grace_env)
    followed = next(c for c in cores if c.name == core_of(r, r.name))
    dead_core = next(c for c in cores if c is not followed)
    live = [c for c in cores if c is not dead_core]
    t = unique("grace")
    sub = Client(r.port, host=r.host).connect()
    try:
        sub.subscribe(f"{t}/#", qos=1)
        wait_until(lambda: all(forward_to(c, f"{t}/x") == [r.name] for c in live), 10,
                   interval=0.1, what="R's route on the live cores")
    finally:
        sub.close()
    kill9(dead_core)
    wait_converged(live + [r], live + [r], stopped=[dead_core.name], deadline=10)
    kill9(r)
    both = sorted([dead_core.name, r.name])
    wait_until(lambda: all((s := peek(c)) and sorted(s["stopped_nodes"]) == both for c in live),
               5, interval=0.05, what="R in stopped_nodes on the live cores (before the grace)")
    for c in live:
        assert forward_to(c, f"{t}/x") == [], f"{c.name} still routes to the dead replicant"
        row = table(peek(c)).get(r.name)
        assert row is not None and (row["role"], row["status"]) == ("replicant", "stopped"), row

    def purged(c: ClusterNode) -> bool:
        s = peek(c)
        return bool(s) and r.name not in s["stopped_nodes"] and r.name not in table(s) \
            and r.name not in s["running_nodes"] \
            and all(r.name not in holders for holders in routes_of(c).values())
    wait_until(lambda: all(purged(c) for c in live), 20, interval=0.2,
               what="R purged (status and routes) on the live cores")
    for c in live:
        s = cli_status(c)
        assert sorted(s["running_nodes"]) == sorted(n.name for n in live)
        assert s["stopped_nodes"] == [dead_core.name], s
        assert table(s)[dead_core.name]["status"] == "stopped"
    human = ctl(live[0], "cluster", "status")  # no replicant left: no Replicants line
    assert human.code == 0 and len(human.out.strip().splitlines()) == 1, human.out
