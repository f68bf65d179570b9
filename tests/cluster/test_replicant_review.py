"""Review of core/replicant clusters (docs/scaling.md): regressions found by reading the code.

Unit level: the runtime pieces (``CoreReplicants``, ``Relay``, ``ClusterService``) are
driven with recording fake links, no sockets but the ports a ``ClusterService`` binds on
127.0.0.x when it is constructed (it is never started).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mqttmesh.cluster import KIND_NODE, FrameError, Member, Membership, PeerInfo, Topology, v1, v2
from mqttmesh.cluster.forwarding import Inbox, Outbox
from mqttmesh.cluster.membership import MemberStatus
from mqttmesh.runtime.cluster_relay import Relay
from mqttmesh.runtime.cluster_replicants import CoreReplicants
from mqttmesh.runtime.cluster_service import ClusterService
from tests.cluster.test_service import FakeBroker, offsets, settings_for


class FakeLink:
    """A PeerLink stand-in that records what is sent on it."""

    def __init__(self, name: str, role: str = "core", version: int = v2.VERSION,
                 outgoing: bool = False) -> None:
        self.peer = PeerInfo(KIND_NODE, name, "mqttmesh", role, version)
        self.outgoing = outgoing
        self.closed = False
        self.close_reason = ""
        self.sent: list[list[Any]] = []

    def send(self, msg: list[Any]) -> None:
        self.sent.append(msg)

    def flush(self) -> None:
        pass

    def close(self, reason: str = "closed") -> None:
        self.closed = True
        self.close_reason = reason


def _core_stub(name: str, membership: Membership, core_links: list[FakeLink]) -> Any:
    """Just what CoreReplicants / Relay read from a ClusterService."""
    stub = SimpleNamespace(
        name=name, cluster_name="mqttmesh", membership=membership, uplink=None, running=True, loop=None,
        settings=SimpleNamespace(cluster=SimpleNamespace(replicant_route_grace=900.0)),
        topology=Topology(membership.incarnation),
        core_links=lambda: [link for link in core_links if not link.closed],
        barriers=SimpleNamespace(gone=lambda _name: None),
        routes=SimpleNamespace(set_down=lambda *_a: None, digests=lambda: {}),
        forwarder=SimpleNamespace(links={}),
        direct_link=lambda _name: None,
    )
    stub.replicants = CoreReplicants(stub)
    return stub


# -- 1. a core with a stale uplink claims the replicant's NEW attachment ---------------------

def test_old_core_with_a_stale_uplink_does_not_claim_the_new_attachment():
    # FIXED (was failing): CoreReplicants.attached() reports m.incarnation(r) (the CURRENT view entry,
    # possibly written by another core) instead of the incarnation written when *this* core
    # admitted r; so after r failed over to c2 while c1 has not yet noticed that r's old
    # link is dead (partition r<->c1, up to the 5 s heartbeat timeout), c1's TOPOLOGY lists
    # r with c2's incarnation and two cores match (invariant 2 broken). core_of() then
    # returns whichever report came first: relays to r go to c1 (lost), upstream_ok(r, c2)
    # is False (r's route data from its real core rejected), c1 keeps r "up".
    m1 = Membership("c1@h", "core")
    m1.merge([Member("c2@h", 1, MemberStatus.MEMBER, "core")])
    c1 = _core_stub("c1@h", m1, [])
    # what CoreReplicants.on_attach does: admit r (a new incarnation), keep its uplink
    first = m1.admit("r@h", "replicant", 0).incarnation
    c1.replicants.links["r@h"] = FakeLink("r@h", role="replicant")
    c1.replicants.admitted["r@h"] = first  # (fixed: the incarnation c1 admitted it at)
    assert c1.replicants.attached() == {"r@h": first}
    # r fails over to c2 (c1's link to r is not closed yet); c2's VIEW reaches c1
    m1.merge([Member("r@h", first + 1, MemberStatus.MEMBER, "replicant")])
    # a third core c3 gets both reports (c1's first: it was sent first)
    m3 = Membership("c3@h", "core")
    m3.merge([Member("r@h", first + 1, MemberStatus.MEMBER, "replicant")])
    t3 = Topology(m3.incarnation)
    t3.report("c1@h", c1.replicants.attached())
    t3.report("c2@h", {"r@h": first + 1})
    assert t3.core_of("r@h") == "c2@h"


# -- 2. v2 messages sent on a v1 link ----------------------------------------------------------

def test_core_never_sends_v2_messages_on_a_v1_link():
    # FIXED (was failing): CoreReplicants.broadcast_topology() sends TOPOLOGY (type 15) on every core
    # link, on every link-up (_on_up) and every gossip round (gossip() with no replicants),
    # whatever version the link negotiated. A v1-only peer (the previous release, during a
    # rolling upgrade) refuses the unknown type (v1.validate -> FrameError -> "bad data")
    # and closes the link: a plain core-only cluster with one old node flaps every 2 s.
    old = FakeLink("old@h", version=1)
    m = Membership("c1@h", "core")
    m.merge([Member("old@h", 1, MemberStatus.MEMBER, "core")])
    core = _core_stub("c1@h", m, [old])
    core.replicants.broadcast_topology()
    core.replicants.gossip([v1.VIEW, m.to_wire()])
    for msg in old.sent:
        try:
            v1.validate(msg)
        except FrameError as exc:
            raise AssertionError(f"v1 peer would close the link on {msg!r}: {exc}") from None


# -- 3. RELAY src is not checked: a node speaks as any other node ----------------------------

def _relay_core() -> tuple[Any, FakeLink]:
    m = Membership("c1@h", "core")
    m.merge([Member("c2@h", 1, MemberStatus.MEMBER, "core"),
             Member("c3@h", 1, MemberStatus.MEMBER, "core"),
             Member("r1@h", 1, MemberStatus.MEMBER, "replicant")])
    c1 = _core_stub("c1@h", m, [])
    r1 = FakeLink("r1@h", role="replicant")
    c1.replicants.links["r1@h"] = r1
    c1.relay = Relay(c1)
    return c1, r1


def test_relay_from_a_replicant_is_not_unwrapped_as_another_node():
    # FIXED (was failing): Relay.on_relay trusts RELAY's src: a message relayed by replicant r1 with
    # src = c2 reaches the handler on a link whose peer is c2, so upstream_ok(c2, c2) holds
    # and r1 can write c2's route stream (ROUTE_DELTAS/SNAPSHOT of any origin), c2's VIEW,
    # TOPOLOGY (``core == sender``), ROUTE_ACKs for c2's barrier... A core should only
    # accept src == link.peer.name from a replicant, and from a core src in {that core,
    # a replicant the topology says is attached to it}.
    c1, r1 = _relay_core()
    seen: list[str] = []
    inner = [v1.ROUTE_DELTAS, "c2@h", "e", 1, [[v1.OP_ADD, "spoofed/#"]]]
    c1.relay.on_relay(r1, [v2.RELAY, "c2@h", "c1@h", inner],
                      lambda link, msg: seen.append(link.peer.name), rpc=False)
    assert seen in ([], ["r1@h"]), f"unwrapped as {seen}"


def test_relay_passed_on_only_with_the_senders_own_name():
    # FIXED (was failing): same root cause, pass-through: c1 relays r1's RELAY [src=c3, dst=c2] to c2
    # unchanged; c2 cannot tell it did not come from c3.
    c1, r1 = _relay_core()
    c2 = FakeLink("c2@h")
    c1.direct_link = lambda name: c2 if name == "c2@h" else None
    inner = [v1.ROUTE_SNAPSHOT, "c3@h", "e", 9, ["spoofed/#"]]
    c1.relay.on_relay(r1, [v2.RELAY, "c3@h", "c2@h", inner], lambda *_: None, rpc=False)
    assert all(msg[1] == "r1@h" for msg in c2.sent), c2.sent


def test_spoofed_relay_writes_another_cores_route_stream(tmp_path: Path):
    # FIXED (was failing): the consequence, end to end inside one ClusterService: c2's route replica on
    # c1 gets a filter c2 never had (invariant 3 of docs/scaling.md / 1 of docs/cluster.md).
    o = offsets(1)[0]
    name = f"rv{o}@127.0.0.1"
    svc = ClusterService(settings_for(tmp_path, name), FakeBroker())
    try:
        svc.membership.merge([Member("c2@h", 1, MemberStatus.MEMBER, "core"),
                              Member("r1@h", 1, MemberStatus.MEMBER, "replicant")])
        r1 = FakeLink("r1@h", role="replicant")
        svc.replicants.links["r1@h"] = r1
        inner = [v1.ROUTE_DELTAS, "c2@h", "e", 1, [[v1.OP_ADD, "spoofed/#"]]]
        asyncio.run(svc._on_dist_message(r1, [v2.RELAY, "c2@h", name, inner]))
        assert "spoofed/#" not in svc.routes.filters_of("c2@h")
    finally:
        svc._dist_sock.close()
        svc._rpc_sock.close()


# -- 4. outboxes of replicants that left are never dropped -----------------------------------

def test_outbox_of_a_purged_replicant_is_dropped(tmp_path: Path):
    # FIXED (was failing): ClusterService.forget() -> _stop_peer() returns early when the node has no
    # _Peer (cores never dial replicants, and a replicant has no _peers at all), so
    # forwarder.drop_peer() is never called for a replicant that is purged / force-left,
    # nor on a replicant for any node that leaves: up to max_pending (100k) QoS 1/2 messages
    # per departed replicant stay in memory forever (failover-grace traffic), are counted in
    # forwards_unacked and walked by retry_relayed every round. Replicants are meant to be
    # added and removed freely, so this grows with churn.
    o = offsets(1)[0]
    name = f"rv{o}@127.0.0.1"
    svc = ClusterService(settings_for(tmp_path, name), FakeBroker())
    try:
        svc.membership.merge([Member("r1@h", 1, MemberStatus.MEMBER, "replicant")])
        box = svc.forwarder.outboxes["r1@h"] = Outbox("s.1")
        box.add(["t", b"x", 1, False, {}, None, None, None], 1)
        box.take(False)
        assert box.unacked == 1
        svc.membership.remove("r1@h")
        svc.forget("r1@h")  # what purge_due / force-leave / a gossiped tombstone do
        assert "r1@h" not in svc.forwarder.outboxes
        assert svc.statistics().forwards_unacked == 0
    finally:
        svc._dist_sock.close()
        svc._rpc_sock.close()


# -- 5. FORWARD_ACK carries no stream: an old ack confirms batches of the new stream ---------

def test_ack_of_the_old_stream_does_not_confirm_the_restarted_stream():
    # FIXED (was failing): Outbox._restart_stream renumbers the kept batches from 1 on a new stream, but
    # ack(seq) is not tied to a stream (FORWARD_ACK [11, seq]). An ack of the old stream
    # still in flight (relayed acks come back on another TCP link than the one whose
    # failure made the outbox drop, e.g. dst -> its core -> our accepted link while our own
    # link to that core is down) removes new-stream batches the receiver never saw: lost
    # QoS 1/2 messages. Fix idea: keep seqs growing across restarts (the new stream starts
    # at old seq + 1 and the Inbox takes a new stream's first batch from wherever it is
    # told it starts), or put the stream in the ack (a v2 FORWARD_ACK).
    box = Outbox("s", max_pending=3)
    inbox = Inbox()
    for i in range(3):
        box.add([f"m{i}"], 1)
        sent = box.take(True)
        assert inbox.accept("a", sent[0][1], sent[0][2])
    old_mark = inbox.mark("a", "s")  # 3: the receiver's ack, in flight
    for i in range(3, 8):  # the destination becomes unreachable: drops, stream restarts
        box.add([f"m{i}"], 1)
        box.take(False)
    assert box.stream != "s" and box.dropped
    kept = box.unacked
    box.ack(old_mark, "s")  # the late ack of stream "s" (fixed: FORWARD_ACK2 names it)
    assert box.unacked == kept, "batches of the new stream were acked by the old stream's ack"
