"""Session takeover across nodes and the cluster client registry (runtime side).

Theory of operation
-------------------
**Algorithm: owner-based registry with Lamport generations; the claiming node pulls the
session from every running member.** (``cluster.clients`` holds the registry.)

1. A CONNECT accepted on node B (``session_connecting``) claims its client id with a new
   generation ``g`` (above every generation B has seen). With no running peer the CONNECT
   goes on at once. Otherwise B sends ``session.takeover {client_id, g, clean}`` to every
   running member and the CONNECT waits (``broker.waiting``).
2. A member N receiving the claim records it (highest ``(generation, node)`` wins) and:
   * if N is itself fetching that client id with an *older* claim, it answers once its own
     fetch is over (so a session it is pulling is passed on, not lost);
   * if N is fetching with a *newer* claim, it answers "nothing here" (the newer claim will
     take whatever N ends up with);
   * otherwise it gives the client id up: clean start -> ``discard_session``; else
     ``export_session`` (kicks the connection with 0x8E, removes the session) and answers
     with the session state.
3. When every member has answered (or ``FETCH_TIMEOUT``), B imports the state it got
   (``import_session``: CONNACK with session present = 1) or starts a new session
   (``session_unavailable``). A member that is down cannot answer: its session is lost to
   this CONNECT (logged); a frozen member costs ``FETCH_TIMEOUT``.
4. **Hand-off.** Messages must not be lost while routes move from N to B. During the export
   N *defers* the removal of the session's routes (they stay in every replica, so publishers
   keep sending to N) and forwards every message that matches the session's subscriptions
   to B (``session.deliver`` on the link the claim came on, after the state, so in order);
   B buffers such messages until the state is imported. Once B's routes are acknowledged by
   every running member (``routes_barrier``) B sends ``session.done`` and N removes the
   deferred routes ``HANDOFF_GRACE`` later (after ``HANDOFF_MAX`` at the latest). A message
   sent by a third node to both N and B in that window is delivered twice (QoS 1/2:
   at-least-once during the hand-off window).
5. A session that ends on its owner (expiry) releases its registry entry on every member.
6. **Conflicts after a partition.** During a split a client id may connect on both sides
   (each claim's fetch cannot reach the other side). On every link (re)start each node sends
   ``session.claims`` with the claims of its connected clients; the receiver observes them
   and, for a client connected here under a lower ``(generation, node)``, discards the
   session here (DISCONNECT 0x8E session taken over): one connection per client id remains,
   the one with the highest claim. The loser's session state (what was queued on that side)
   is dropped, not merged. Lamport generations of the two sides are not comparable in time:
   "newest" is the claim order, which is the real order only when the newer CONNECT's node
   had the higher clock (ties: the higher node name).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mqttmesh.cluster import v1
from mqttmesh.cluster.clients import ClientRegistry, decode_session_state, encode_session_state
from mqttmesh.cluster.forwarding import decode_message, encode_message
from mqttmesh.cluster.wire import session_ops as ops
from mqttmesh.errors import ClusterError, RemoteProtocolError
from mqttmesh.logs import log_event
from mqttmesh.protocol import matches, parse_share

if TYPE_CHECKING:
    from mqttmesh.runtime.cluster_service import ClusterService
    from mqttmesh.runtime.peer_link import PeerLink

__all__ = ["ClusterSessions", "FETCH_TIMEOUT", "HANDOFF_GRACE", "HANDOFF_MAX"]

log = logging.getLogger("mqttmesh.cluster.sessions")

FETCH_TIMEOUT = 3.0
"""Seconds a claim waits for one member's answer (below the broker's 5 s CONNECT wait)."""
HANDOFF_GRACE = 0.5
"""Seconds the old owner keeps handing off after the new owner's routes are everywhere."""
HANDOFF_MAX = 5.0
"""Seconds after which a hand-off ends even without ``session.done``."""


class _Fetch:
    __slots__ = ("client_id", "gen", "clean", "prev")

    def __init__(self, client_id: str, gen: int, clean: bool, prev: tuple[int, str] | None):
        self.client_id = client_id
        self.gen = gen
        self.clean = clean
        self.prev = prev


class _Handoff:
    __slots__ = ("target", "link", "subs", "routes", "timer")

    def __init__(self, target: str, link: PeerLink, subs: list[tuple[str, int, bool, bool,
                 int | None]], routes: list[str]) -> None:
        self.target = target
        self.link = link
        self.subs = subs  # (real filter, qos, no_local, retain_as_published, sub id)
        self.routes = routes
        self.timer: asyncio.TimerHandle | None = None


class ClusterSessions:
    """The session side of a ClusterService (see the module docstring)."""

    def __init__(self, service: ClusterService) -> None:
        self.s = service
        self.registry = ClientRegistry()
        self._fetches: dict[str, dict[int, _Fetch]] = {}
        self._deferred: dict[str, list[tuple[PeerLink, int, int, bool]]] = {}
        self._early: dict[str, list[Any]] = {}
        self.handoffs: dict[str, _Handoff] = {}
        self._collect: list[str] | None = None
        self.imported = 0
        self.exported = 0
        self.handed_off = 0
        self.lost = 0

    # -- broker hooks ------------------------------------------------------------------------
    def session_connecting(self, client_id: str, clean_start: bool) -> bool:
        s = self.s
        prev = self.registry.get(client_id)
        gen = self.registry.claim(client_id, s.name)
        peers = [p for p in s.membership.peers() if s.peer_link(p) is not None]
        if not peers or s._tg is None:
            self._log_lost(client_id, prev, clean_start)
            return False
        fetch = _Fetch(client_id, gen, clean_start, prev)
        self._fetches.setdefault(client_id, {})[gen] = fetch
        s._tg.create_task(self._fetch(fetch, peers), name=f"session-fetch-{client_id[:40]}")
        return True

    def session_ended(self, client_id: str) -> None:
        """The broker ended a session here; release our registry entry unless a new session
        of that client id takes its place right away (clean start, import)."""
        loop = self.s.loop
        if loop is not None:
            loop.call_soon(self._maybe_release, client_id)

    def _maybe_release(self, client_id: str) -> None:
        s = self.s
        broker = s.broker
        if broker is None or client_id in broker.sessions or client_id in broker.waiting \
                or client_id in self._fetches:
            return
        entry = self.registry.get(client_id)
        if entry is None or entry[1] != s.name:
            return
        self.registry.release(client_id, s.name, entry[0])
        msg = [v1.REQUEST, ops.ONE_WAY, ops.RELEASE, {"client_id": client_id, "gen": entry[0]}]
        for link in s.up_links():
            link.send(msg)

    def defer_route_removal(self, topic_filter: str) -> bool:
        """Called by ``route_removed``: True if the removal is deferred (hand-off)."""
        if self._collect is None:
            return False
        self._collect.append(topic_filter)
        return True

    def on_message(self, message: Any, local: bool) -> None:
        """A message published here (``local``) or forwarded to us: hand it off to the new
        owner of a session being moved away from here if it matches that session."""
        if not self.handoffs:
            return
        topic = message.topic
        s = self.s
        for client_id, h in list(self.handoffs.items()):
            best: tuple[int, bool, int | None] | None = None
            for real, qos, no_local, rap, sub_id in h.subs:
                if no_local and message.sender == client_id:
                    continue
                if matches(real, topic) and (best is None or qos > best[0]):
                    best = (qos, rap, sub_id)
            if best is None:
                continue
            if local and h.target in s.routes.match(topic):
                continue  # the forwarder sends it to the new owner directly
            link = h.link if not h.link.closed else s.peer_link(h.target)
            if link is None or s.loop is None:
                continue
            qos = min(best[0], message.qos)
            link.send([v1.REQUEST, ops.ONE_WAY, ops.DELIVER, {
                "client_id": client_id, "m": encode_message(message, s.loop.time()),
                "qos": qos, "retain": bool(message.retain and best[1]), "sub_id": best[2]}])
            self.handed_off += 1

    def on_link_up(self, link: PeerLink) -> None:
        """Our link to a member (re)started: tell it the claims of our connected clients."""
        s = self.s
        broker = s.broker
        if broker is None:
            return
        claims = []
        for cid, (gen, node) in self.registry:
            session = broker.sessions.get(cid)
            if node == s.name and session is not None and session.channel is not None:
                claims.append([cid, gen])
        if claims:
            link.send([v1.REQUEST, ops.ONE_WAY, ops.CLAIMS, {"client_id": "", "claims": claims}])

    def _on_claims(self, sender: str, claims: Any) -> None:
        s = self.s
        broker = s.broker
        loop = s.loop
        if broker is None or loop is None or not isinstance(claims, list):
            return
        for item in claims:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], int)):
                continue
            cid, gen = item
            mine = self.registry.get(cid)
            self.registry.observe(cid, sender, gen)
            if mine is None or mine[1] != s.name or mine > (gen, sender) \
                    or cid in self._fetches or cid in broker.waiting:
                continue
            session = broker.sessions.get(cid)
            if session is None or session.channel is None:
                continue
            log_event(log, "info", "client id connected on both sides of a partition: "
                      "the newer claim wins", node=s.name, client_id=cid, mine=mine[0],
                      winner=sender, winner_gen=gen)
            broker.discard_session(cid, loop.time())

    # -- claiming (this node) ------------------------------------------------------------------
    async def _fetch(self, fetch: _Fetch, peers: list[str]) -> None:
        results: list[tuple[str, Any]] = []
        try:
            answers = await asyncio.gather(*(self._ask(p, fetch) for p in peers))
            results = [(p, a) for p, a in zip(peers, answers) if a is not None]
        except Exception:  # never let a bug escape into the node's TaskGroup
            log.exception("session fetch failed")
        finally:
            try:
                self._complete(fetch, results)
            except Exception:
                log.exception("session fetch completion failed")

    async def _ask(self, peer: str, fetch: _Fetch) -> Any:
        link = self.s.peer_link(peer)
        if link is None:
            return None
        try:
            reply = await link.request(ops.TAKEOVER, {"client_id": fetch.client_id,
                                                      "gen": fetch.gen, "clean": fetch.clean},
                                       timeout=FETCH_TIMEOUT)
        except ClusterError as exc:
            log_event(log, "warning", "session takeover: no answer", node=self.s.name,
                      peer=peer, client_id=fetch.client_id, reason=str(exc))
            return None
        return reply.get("state") if isinstance(reply, dict) else None

    def _complete(self, fetch: _Fetch, results: list[tuple[str, Any]]) -> None:
        s = self.s
        cid = fetch.client_id
        mine = self._fetches.get(cid)
        if mine is not None:
            mine.pop(fetch.gen, None)
            if not mine:
                del self._fetches[cid]
        broker = s.broker
        loop = s.loop
        if broker is None or loop is None:
            return
        now = loop.time()
        imported_from: list[str] = []
        for peer, wire in results:
            try:
                state = decode_session_state(wire, now)
            except ValueError:
                log_event(log, "warning", "malformed session state dropped", peer=peer,
                          client_id=cid)
                continue
            local = broker.sessions.get(cid)
            if fetch.clean or (local is not None and _state_richness(state) == 0):
                continue  # keep what is here (an empty session from a lost race)
            broker.import_session(state, now)
            imported_from.append(peer)
            self.imported += 1
            log_event(log, "debug", "session taken over", node=s.name, client_id=cid,
                      previous=peer, queued=len(state.queue), inflight=len(state.inflight))
        if not imported_from:
            if not results:
                self._log_lost(cid, fetch.prev, fetch.clean)
            broker.session_unavailable(cid, now)
        early = self._early.pop(cid, None) if cid not in self._fetches else None
        if early:
            session = broker.sessions.get(cid)
            if session is not None:
                for message, qos, retain, sub_id in early:
                    session.deliver(message, qos, retain, sub_id, now)
        if imported_from:
            self._after_import(cid, imported_from)
        self._answer_deferred(cid)

    def _after_import(self, cid: str, sources: list[str]) -> None:
        s = self.s

        def done() -> None:
            for peer in sources:
                link = s.peer_link(peer)
                if link is not None:
                    link.send([v1.REQUEST, ops.ONE_WAY, ops.DONE, {"client_id": cid}])

        if not s.routes_barrier(done):
            done()

    def _log_lost(self, cid: str, prev: tuple[int, str] | None, clean: bool) -> None:
        s = self.s
        if clean or prev is None or prev[1] == s.name:
            return
        if s.membership.is_member(prev[1]) and not s.membership.is_up(prev[1]):
            self.lost += 1
            log_event(log, "warning", "session held by a node that is down: starting a new "
                      "session", node=s.name, client_id=cid, owner=prev[1])

    # -- answering claims (other nodes) -----------------------------------------------------------
    def on_request(self, link: PeerLink, rid: int, op: str, args: Any) -> None:
        """A ``session.*`` REQUEST from a member (see ``cluster.wire.session_ops``)."""
        s = self.s
        sender = link.peer.name
        if op == ops.CLAIMS and isinstance(args, dict) and s.membership.is_member(sender):
            self._on_claims(sender, args.get("claims"))
            return
        if not isinstance(args, dict) or not isinstance(args.get("client_id"), str) \
                or not s.membership.is_member(sender):
            if rid:
                link.send([v1.REPLY, rid, False, "bad session request"])
            return
        cid = args["client_id"]
        if op == ops.TAKEOVER:
            gen = args.get("gen")
            if not isinstance(gen, int):
                link.send([v1.REPLY, rid, False, "bad session request"])
                return
            clean = bool(args.get("clean"))
            self.registry.observe(cid, sender, gen)
            fetches = self._fetches.get(cid)
            if fetches and any((g, s.name) < (gen, sender) for g in fetches):
                self._deferred.setdefault(cid, []).append((link, rid, gen, clean))
                return
            if fetches:  # our claim is newer: it takes whatever is here
                link.send([v1.REPLY, rid, True, {"state": None}])
                return
            self._give_up(link, rid, cid, clean)
        elif op == ops.DELIVER:
            self._on_deliver(cid, args)
        elif op == ops.DONE:
            h = self.handoffs.get(cid)
            if h is not None and h.target == sender and s.loop is not None:
                if h.timer is not None:
                    h.timer.cancel()
                h.timer = s.loop.call_later(HANDOFF_GRACE, self._end_handoff, cid, h)
        elif op == ops.RELEASE:
            gen = args.get("gen")
            self.registry.release(cid, sender, gen if isinstance(gen, int) else None)
        elif rid:
            link.send([v1.REPLY, rid, False, f"unknown operation {op[:40]!r}"])

    def _answer_deferred(self, cid: str) -> None:
        waiting = self._deferred.get(cid)
        if not waiting:
            return
        fetches = self._fetches.get(cid, {})
        keep = []
        me = self.s.name
        for link, rid, gen, clean in waiting:
            claim = (gen, link.peer.name)
            if any((g, me) > claim for g in fetches):  # a newer claim of ours takes it
                link.send([v1.REPLY, rid, True, {"state": None}])
            elif fetches:
                keep.append((link, rid, gen, clean))
            else:
                self._give_up(link, rid, cid, clean)
        if keep:
            self._deferred[cid] = keep
        else:
            del self._deferred[cid]

    def _give_up(self, link: PeerLink, rid: int, cid: str, clean: bool) -> None:
        s = self.s
        broker = s.broker
        loop = s.loop
        if broker is None or loop is None:
            link.send([v1.REPLY, rid, True, {"state": None}])
            return
        now = loop.time()
        if clean:
            broker.discard_session(cid, now)
            link.send([v1.REPLY, rid, True, {"state": None}])
            return
        self._collect = []
        try:
            state = broker.export_session(cid, now)
        finally:
            deferred, self._collect = self._collect, None
        wire = None
        if state is not None:
            wire = encode_session_state(state, now)
            self.exported += 1
            log_event(log, "debug", "session handed over", node=s.name, client_id=cid,
                      to=link.peer.name, queued=len(state.queue), inflight=len(state.inflight))
        link.send([v1.REPLY, rid, True, {"state": wire}])
        subs = []
        for topic_filter, qos, no_local, rap, _, sub_id in (state.subscriptions if state else ()):
            try:
                group, real = parse_share(topic_filter)
            except RemoteProtocolError:
                continue
            if group is None:
                subs.append((real, qos, no_local, rap, sub_id))
        if not subs:  # nothing moves (no session, or only shared subscriptions)
            self._end_handoff(cid, _Handoff(link.peer.name, link, [], deferred))
            return
        h = _Handoff(link.peer.name, link, subs, deferred)
        old = self.handoffs.get(cid)
        if old is not None:
            self._end_handoff(cid, old)
        self.handoffs[cid] = h
        h.timer = loop.call_later(HANDOFF_MAX, self._end_handoff, cid, h)

    def _end_handoff(self, cid: str, h: _Handoff) -> None:
        if self.handoffs.get(cid) is h:
            del self.handoffs[cid]
        if h.timer is not None:
            h.timer.cancel()
            h.timer = None
        s = self.s
        broker = s.broker
        still = {f for other in self.handoffs.values() for f in other.routes}
        routes, h.routes = h.routes, []
        for topic_filter in routes:
            if topic_filter in still:
                continue
            if broker is not None and broker.dispatcher.trie.get(topic_filter) is not None:
                continue  # a local subscriber again: the route stays
            s.route_removed(topic_filter)

    def _on_deliver(self, cid: str, args: dict[str, Any]) -> None:
        s = self.s
        broker = s.broker
        if broker is None or s.loop is None:
            return
        now = s.loop.time()
        try:
            message = decode_message(args.get("m"), now)
            qos = int(args.get("qos", 0))
        except (ValueError, TypeError):
            return
        sub_id = args.get("sub_id")
        item = (message, qos, bool(args.get("retain")), sub_id if isinstance(sub_id, int)
                else None)
        if cid in self._fetches:
            self._early.setdefault(cid, []).append(item)
            return
        session = broker.sessions.get(cid)
        if session is not None:
            session.deliver(*item, now)
            return
        h = self.handoffs.get(cid)
        if h is not None:  # the session moved on meanwhile: pass it along the chain
            link = h.link if not h.link.closed else s.peer_link(h.target)
            if link is not None:
                link.send([v1.REQUEST, ops.ONE_WAY, ops.DELIVER, args])
                self.handed_off += 1

    # -- membership and introspection --------------------------------------------------------------
    def node_gone(self, name: str) -> None:
        """``name`` left the cluster: forget its registry entries."""
        self.registry.drop_node(name)

    def lookup(self, client_id: str) -> dict[str, Any]:
        broker = self.s.broker
        entry = self.registry.get(client_id)
        session = broker.sessions.get(client_id) if broker is not None else None
        return {
            "registry": None if entry is None else [entry[0], entry[1]],
            "session": session is not None,
            "connected": session is not None and session.channel is not None,
            "fetching": client_id in self._fetches,
            "handoff": client_id in self.handoffs,
            "counters": {"imported": self.imported, "exported": self.exported,
                         "handed_off": self.handed_off, "lost": self.lost,
                         "dropped": broker.statistics().messages_dropped
                         if broker is not None else 0},
        }


def _state_richness(state: Any) -> int:
    return len(state.subscriptions) + len(state.inflight) + len(state.queue)
