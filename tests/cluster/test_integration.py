"""Cluster integration: real node processes on 127.0.0.1/2/3 (same ports), paho clients, ctl.

Nodes are started as ``python -m mqttmesh foreground`` (see ``cluster_nodes``).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.cluster.cluster_nodes import ClusterNode, ctl, pick_offset, retained_on, status_of
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@pytest.fixture
def cluster(tmp_path: Path):
    """``cluster(n)`` starts n standalone nodes ``mqttmesh<o>@127.0.0.<i>`` (same offset)."""
    made: list[ClusterNode] = []
    offset = pick_offset()

    def start(n: int = 3, same_host: bool = False, env: dict | None = None,
              offset_step: int = 0) -> list[ClusterNode]:
        nodes = []
        for i in range(n):
            host = HOSTS[0] if same_host else HOSTS[len(made) % len(HOSTS)]
            name = f"mqttmesh{offset + (len(made) if same_host else 0)}@{host}"
            node = ClusterNode(tmp_path / f"n{len(made)}", name=name, env=env or {})
            made.append(node)
            node.start()
            nodes.append(node)
        return nodes

    yield start
    for node in made:
        node.stop(timeout=5)


def join_all(nodes: list[ClusterNode]) -> None:
    first = nodes[0]
    for node in nodes[1:]:
        result = ctl(node, "cluster", "join", first.name)
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines[0] == "Join the cluster successfully."
        assert lines[1].startswith("Cluster status: #{running_nodes => [")
    names = sorted(n.name for n in nodes)
    for node in nodes:
        wait_until(lambda node=node: status_of(node)["running_nodes"] == names, 10,
                   what=f"{node.name} sees every node running")


def test_join_status_everywhere_and_exact_deliveries(cluster):
    n1, n2, n3 = cluster(3)
    join_all([n1, n2, n3])
    names = sorted(n.name for n in (n1, n2, n3))
    expected = "Cluster status: #{running_nodes => [" + ",".join(
        f"'{n}'" for n in names) + "], stopped_nodes => []}"
    for node in (n1, n2, n3):
        out = ctl(node, "cluster", "status")
        assert out.code == 0 and out.out.strip() == expected
        assert status_of(node) == {"running_nodes": names, "stopped_nodes": []}
    prefix = unique("x")
    s2 = Client(n2.port, host=n2.host).connect()
    s3 = Client(n3.port, host=n3.host).connect()
    s3b = Client(n3.port, host=n3.host).connect()
    s2.subscribe(f"{prefix}/+/temp", qos=1)
    s3.subscribe(f"{prefix}/#", qos=1)
    s3b.subscribe(f"{prefix}/+/+", qos=1)
    wait_until(lambda: "forward_to" in json.loads(ctl(
        n1, "route", "explain", f"{prefix}/a/temp", "--json").out) and sorted(json.loads(ctl(
            n1, "route", "explain", f"{prefix}/a/temp", "--json").out)["forward_to"])
        == sorted([n2.name, n3.name]), 5, what="routes on n1")
    pub = Client(n1.port, host=n1.host).connect()
    count = 200
    for i in range(count):
        pub.publish(f"{prefix}/{i}/temp", str(i), qos=1, wait=(i == count - 1))
    for sub in (s2, s3, s3b):
        got = sub.expect_many(count, timeout=10)
        assert sorted(int(m.payload) for m in got) == list(range(count))
        sub.expect_none(0.3)  # no duplicates
    for c in (pub, s2, s3, s3b):
        c.close()
    verify = ctl(n1, "cluster", "routes", "verify")
    assert verify.code == 0, verify.out + verify.err
    assert verify.out.startswith("Route tables are identical on 3 nodes")


def test_leave_force_leave_and_routes_gone(cluster):
    n1, n2, n3 = cluster(3)
    join_all([n1, n2, n3])
    topic = unique("lv")
    s3 = Client(n3.port, host=n3.host).connect()
    s3.subscribe(f"{topic}/#", qos=1)
    s2 = Client(n2.port, host=n2.host).connect()
    s2.subscribe(f"{topic}/#", qos=1)

    def forward_to(node):
        return json.loads(ctl(node, "route", "explain", f"{topic}/x", "--json").out)[
            "forward_to"]

    wait_until(lambda: forward_to(n1) == sorted([n2.name, n3.name]), 5, what="routes")
    # n3 killed -9: stopped everywhere, its routes unused at once, then force-left
    n3.proc.send_signal(signal.SIGKILL)
    n3.wait_exit(5)
    for node in (n1, n2):
        wait_until(lambda node=node: status_of(node)["stopped_nodes"] == [n3.name], 10,
                   what="n3 stopped")
    assert forward_to(n1) == [n2.name]
    result = ctl(n1, "cluster", "force-leave", n3.name)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "Remove the node from cluster successfully."
    both = sorted([n1.name, n2.name])
    for node in (n1, n2):
        wait_until(lambda node=node: status_of(node) == {"running_nodes": both,
                                                        "stopped_nodes": []}, 10,
                   what="force-leave on every member")
    explain = json.loads(ctl(n1, "route", "explain", f"{topic}/x", "--json").out)
    assert all(n3.name not in nodes for _, nodes in explain["filters"])
    # n2 leaves: it tells n1; both standalone, n2's routes gone from n1
    result = ctl(n2, "cluster", "leave")
    assert result.code == 0, result.err
    assert status_of(n2) == {"running_nodes": [n2.name], "stopped_nodes": []}
    wait_until(lambda: status_of(n1) == {"running_nodes": [n1.name], "stopped_nodes": []},
               10, what="n1 alone")
    wait_until(lambda: forward_to(n1) == [], 5, what="n2's routes purged")
    s2.close()
    s3.close()


def test_restart_rejoins_by_itself(cluster):
    n1, n2 = cluster(2)
    join_all([n1, n2])
    n2.stop(timeout=10)
    wait_until(lambda: status_of(n1)["stopped_nodes"] == [n2.name], 10, what="n2 stopped")
    n2.start()
    names = sorted([n1.name, n2.name])
    for node in (n1, n2):
        wait_until(lambda node=node: status_of(node)["running_nodes"] == names, 10,
                   what="rejoined")
    topic = unique("rj")
    sub = Client(n2.port, host=n2.host).connect()
    sub.subscribe(topic, qos=1)
    pub = Client(n1.port, host=n1.host).connect()
    deadline = time.monotonic() + 2.0  # routable from every node within 2 s
    while True:
        pub.publish(topic, b"hello", qos=1)
        try:
            sub.expect(timeout=0.2)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "subscription not routable within 2 s"
    sub.close()
    pub.close()


def test_bad_input_one_line_errors_and_no_change(cluster):
    n1, n2 = cluster(2)
    join_all([n1, n2])
    before = status_of(n1)
    loner = cluster(1, env={"MQTTMESH_NODE__COOKIE": "another-cookie"})[0]
    cases = [
        (n1, ["cluster", "join", n1.name], "cannot join itself"),
        (n1, ["cluster", "join", f"ghost{pick_offset()}@127.0.0.3"], "unreachable"),
        (loner, ["cluster", "join", n1.name], "wrong cookie"),
        (n1, ["cluster", "join", "not-a-node-name"], "invalid node name"),
        (n1, ["cluster", "join", "x@localhost"], "invalid node name"),
        (n1, ["cluster", "force-leave", "nobody@127.0.0.9"], "not a member"),
    ]
    for node, args, reason in cases:
        result = ctl(node, *args)
        assert result.code != 0, args
        assert result.err.count("\n") == 1 and reason in result.err, (args, result.err)
        assert result.out == ""
    assert status_of(n1) == before
    assert status_of(loner) == {"running_nodes": [loner.name], "stopped_nodes": []}
    # the wrong cookie was logged on both sides with the peer's address, never the cookie
    wait_until(lambda: "link refused" in n1.log_text(None), 5, what="refusal logged")
    assert "another-cookie" not in n1.log_text(None)
    assert "mqttmesh-test-cookie" not in loner.log_text(None)


def test_same_host_pseudo_distributed(cluster):
    a, b = cluster(2, same_host=True)
    assert a.host == b.host and a.name != b.name
    join_all([a, b])
    topic = unique("sh")
    sub = Client(b.port, host=b.host).connect()
    sub.subscribe(topic, qos=1)
    pub = Client(a.port, host=a.host).connect()
    wait_until(lambda: json.loads(ctl(a, "route", "explain", topic, "--json").out)[
        "forward_to"] == [b.name], 5, what="route")
    pub.publish(topic, b"x", qos=1)
    assert sub.expect(timeout=5).payload == b"x"
    sub.close()
    pub.close()


def test_join_dry_run_changes_nothing(cluster):
    n1, n2 = cluster(2)
    result = ctl(n2, "cluster", "join", n1.name, "--dry-run")
    assert result.code == 0, result.err
    assert result.out.startswith("Dry run: nothing was changed.")
    assert status_of(n2) == {"running_nodes": [n2.name], "stopped_nodes": []}
    assert status_of(n1) == {"running_nodes": [n1.name], "stopped_nodes": []}


def test_other_name_on_same_data_dir_refused(cluster, tmp_path):
    (n1,) = cluster(1)
    n1.stop(timeout=10)
    impostor = ClusterNode(n1.workdir, name=f"other{pick_offset()}@127.0.0.1")
    impostor.data_dir = n1.data_dir
    impostor.spawn()
    code = impostor.wait_exit(20)
    assert code != 0
    assert f"belongs to node {n1.name}" in impostor.log_text(None)


def test_frozen_node_detected_by_heartbeat_then_back(cluster):
    n1, n2 = cluster(2)
    join_all([n1, n2])
    n2.signal(signal.SIGSTOP)  # alive socket, no heartbeats: only the detector notices
    try:
        t0 = time.monotonic()
        wait_until(lambda: status_of(n1)["stopped_nodes"] == [n2.name], 15,
                   what="n2 detected down")
        assert time.monotonic() - t0 < 12
    finally:
        n2.signal(signal.SIGCONT)
    names = sorted([n1.name, n2.name])
    wait_until(lambda: status_of(n1)["running_nodes"] == names, 15, what="n2 back")


def _routes_everywhere(nodes):
    from mqttmesh.config import load_settings
    from mqttmesh.mgmt import cluster as mgmt

    out = {}
    for node in nodes:
        settings = load_settings(str(node.config_path), {})
        result = mgmt.call_sync(settings, "routes_list")
        table: dict[str, set[str]] = {}
        for topic_filter, holders in result["routes"].items():
            for holder in holders:
                table.setdefault(holder, set()).add(topic_filter)
        out[node.name] = table
    return out


def test_route_convergence_under_churn(cluster):
    import random as _random

    nodes = cluster(3)
    join_all(nodes)
    rng = _random.Random(7)
    prefix = unique("cv")
    filters = [f"{prefix}/{i}" if i % 3 else f"{prefix}/{i}/+" for i in range(250)]
    clients = []
    live: dict[str, dict[str, int]] = {n.name: {} for n in nodes}  # node -> filter -> subs
    subs_of: list[set[str]] = []
    for i in range(200):
        node = nodes[i % 3]
        clients.append((node, Client(node.port, host=node.host).connect()))
        subs_of.append(set())
    for _ in range(1500):
        idx = rng.randrange(len(clients))
        node, client = clients[idx]
        f = rng.choice(filters)
        if f in subs_of[idx]:
            client.unsubscribe(f)
            subs_of[idx].discard(f)
            live[node.name][f] -= 1
        else:
            client.subscribe(f, qos=1)
            subs_of[idx].add(f)
            live[node.name][f] = live[node.name].get(f, 0) + 1
    expected = {name: {f for f, n in table.items() if n > 0} for name, table in live.items()}

    def converged(want):
        seen = _routes_everywhere(nodes)
        return all({h: fs for h, fs in table.items() if fs} ==
                   {h: fs for h, fs in want.items() if fs} for table in seen.values())

    t0 = time.monotonic()
    wait_until(lambda: converged(expected), 5, interval=0.1, what="route tables converge")
    assert time.monotonic() - t0 < 5
    for _, client in clients:
        client.close()
    wait_until(lambda: converged({}), 5, interval=0.1, what="0 leaked routes")


def test_retained_replicated_and_synced_to_a_joiner(cluster):
    n1, n2, n3 = cluster(3)
    join_all([n1, n2])
    topic = unique("ret")
    pub = Client(n1.port, host=n1.host).connect()
    pub.publish(topic, b"kept", qos=1, retain=True)
    pub.close()

    wait_until(lambda: retained_on(n2, topic) == b"kept", 5, interval=0.1, what="retained on n2")
    result = ctl(n3, "cluster", "join", n2.name)
    assert result.code == 0, result.err
    wait_until(lambda: retained_on(n3, topic) == b"kept", 5, interval=0.1, what="retained on n3")
