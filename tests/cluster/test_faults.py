"""Crash and churn under steady QoS 1 traffic (real nodes; SPEC §5, issue 7).

* crash: publisher on node 1, subscriber on node 2; node 3 (which also has a subscriber,
  so node 1 forwards to it) is killed -9 and restarted three times: 0 acknowledged messages
  lost between the stable nodes, duplicates counted and printed.
* churn: node 3 joins and leaves (``ctl cluster leave`` / ``join``) repeatedly under the same
  traffic: 0 lost; afterwards node 1 forwards to node 3 again (a new forwarding stream is
  not mistaken for duplicates of the one before the leave).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster.test_partition_heal import forward_to, start_cluster
from tests.helpers import Client
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until
from tests.cluster.cluster_nodes import ClusterNode, ctl, status_of
from tests.helpers.partition import QosTraffic


@pytest.fixture
def nodes(tmp_path: Path):
    made = start_cluster(tmp_path)
    yield made
    for node in made:
        node.stop(timeout=5)


def _traffic(nodes: list[ClusterNode], topic: str) -> tuple[QosTraffic, list[Client]]:
    n1, n2, n3 = nodes
    sub = Client(n2.port, host=n2.host, clean=False, client_id=unique("sub")).connect()
    sub.subscribe(topic, qos=1)
    pub = Client(n1.port, host=n1.host).connect()
    wait_until(lambda: _routed(pub, sub, topic), 10, interval=0.1, what="route n1 -> n2")
    return QosTraffic(pub, [sub], topic, rate=50).start(), [pub, sub]


def _routed(pub: Client, sub: Client, topic: str) -> bool:
    pub.publish(topic, b"0", qos=1)
    try:
        sub.expect(timeout=0.3, topic=topic)
    except AssertionError:
        return False
    sub.drain()
    return True


def test_kill9_third_node_loses_nothing(nodes):
    n1, n2, n3 = nodes
    topic = unique("crash")
    traffic, clients = _traffic(nodes, topic)
    for _ in range(3):
        s3 = Client(n3.port, host=n3.host).connect()
        s3.subscribe(topic, qos=1)  # n1 forwards to n3 too while it lives
        time.sleep(1.5)  # traffic flows to n3 (fault timing, not synchronisation)
        n3.kill()
        s3.close()
        wait_until(lambda: status_of(n1)["stopped_nodes"] == [n3.name], 10, what="n3 down")
        time.sleep(1.0)
        n3.start()
        wait_until(lambda: status_of(n3)["running_nodes"] == sorted(
            n.name for n in nodes), 15, what="n3 back")
    tally = traffic.finish(timeout=30)
    print(f"kill -9 x3 of node 3: {tally}")
    assert tally.acked > 100
    assert tally.lost == [0], tally
    for c in clients:
        c.close()


def test_churn_join_leave_loses_nothing(nodes):
    n1, n2, n3 = nodes
    topic = unique("churn")
    traffic, clients = _traffic(nodes, topic)
    both = sorted([n1.name, n2.name])
    # n1 forwards QoS 1 to n3 before the churn, so its forwarding stream to n3 has history
    s3 = Client(n3.port, host=n3.host).connect()
    s3.subscribe(topic, qos=1)
    wait_until(lambda: s3.messages.qsize() >= 20, 10, what="n3 receives the stream")
    s3.close()
    for _ in range(3):
        result = ctl(n3, "cluster", "leave")
        assert result.code == 0, result.err
        wait_until(lambda: status_of(n1)["running_nodes"] == both, 10, what="n3 left")
        result = ctl(n3, "cluster", "join", n1.name)
        assert result.code == 0, result.err
        wait_until(lambda: status_of(n1)["running_nodes"] == sorted(n.name for n in nodes),
                   10, what="n3 joined")
    tally = traffic.finish(timeout=30)
    # after leave / rejoin, n1's new forwarding stream to n3 is not taken for duplicates
    s3 = Client(n3.port, host=n3.host).connect()
    s3.subscribe(topic, qos=1)
    pub = clients[0]
    wait_until(lambda: n3.name in forward_to(n1, topic), 10, what="route n1 -> n3")
    for i in range(50):
        pub.publish(topic, f"after-{i}".encode(), qos=1)
    got = {m.payload for m in s3.expect_many(50, timeout=10)}
    assert got == {f"after-{i}".encode() for i in range(50)}
    s3.close()
    print(f"churn x3 of node 3: {tally}")
    assert tally.acked > 50
    assert tally.lost == [0], tally
    for c in clients:
        c.close()
