"""Management requests served by every node (``mgmt.*`` ops on the ctl/node request channel).

Theory of operation
-------------------
``NodeOps(node)`` registers its handlers in ``ClusterOps.local_ops`` under ``mgmt.<name>``.
A front-end (``mgmt`` -> ``ctl`` link, used by the CLI and the HTTP API) asks one node; that
node answers for the whole cluster by asking every running member the same op over its
outgoing distribution link (``REQUEST`` with ``{"scope": "node"}``, v1 meaning unchanged: new
op names only) and concatenating the rows, each tagged with its ``node``. A member that does
not answer within ``GATHER_TIMEOUT`` is listed in ``unreachable``.

Users (docs/access.md) are replicated by the same path: the node that takes the change hashes
the password once and sends the hashed record (``mgmt.users_put``) to every running member;
a node that joins a cluster takes the user table of the node it joined (``users_snapshot``).
Not covered: a member that is down while users change keeps its old table until it joins
again (``ctl cluster join``) or an operator re-applies the change.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mqttmesh import __version__
from mqttmesh.errors import ClusterError, MqttMeshError, ProtocolError
from mqttmesh.protocol import validate_topic_name

__all__ = ["NodeOps", "GATHER_TIMEOUT"]

log = logging.getLogger("mqttmesh.mgmt")

GATHER_TIMEOUT = 5.0
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class NodeOps:
    """The ``mgmt.*`` operations of one Node.

    Args:
        node: the running ``Node`` (broker, users, authorizer, cluster service).
    """

    def __init__(self, node: Any) -> None:
        self.node = node
        self.started_wall = time.time()

    @property
    def service(self) -> Any:
        return self.node.cluster

    def handlers(self) -> dict[str, Handler]:
        """op name -> coroutine(args); given to ``ClusterOps.local_ops``."""
        gathered = ("nodes", "clients", "subscriptions", "stats", "metrics", "kick")
        out: dict[str, Handler] = {}
        for name in gathered:
            out[f"mgmt.{name}"] = self._gathering(name)
        out.update({
            "mgmt.routes": self.routes,
            "mgmt.retained": self.retained,
            "mgmt.retained_delete": self.retained_delete,
            "mgmt.publish": self.publish,
            "mgmt.users_list": self.users_list,
            "mgmt.users_add": self.users_add,
            "mgmt.users_update": self.users_update,
            "mgmt.users_delete": self.users_delete,
            "mgmt.users_put": self.users_put,
            "mgmt.users_remove": self.users_remove,
            "mgmt.users_snapshot": self.users_snapshot,
            "mgmt.acl_reload": self._gathering("acl_reload"),
        })
        return out

    # -- gathering -------------------------------------------------------------------------
    def _gathering(self, name: str) -> Handler:
        local = getattr(self, f"local_{name}")

        async def handler(args: dict[str, Any]) -> Any:
            rows = list(local(args))
            if args.get("scope") == "node":
                return {"rows": rows}
            answers = await self.ask_members(f"mgmt.{name}", {**args, "scope": "node"})
            unreachable = [n for n, a in answers.items() if a is None]
            for answer in answers.values():
                if isinstance(answer, dict) and isinstance(answer.get("rows"), list):
                    rows.extend(answer["rows"])
            return {"rows": rows, "unreachable": sorted(unreachable)}
        return handler

    async def ask_members(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Ask every other running member; node -> answer (None = no answer)."""
        service = self.service
        if service is None:
            return {}
        peers = [n for n in service.membership.status().running_nodes if n != service.name]

        async def ask(peer: str) -> Any:
            link = service.peer_link(peer)
            if link is None:
                return None
            try:
                return await link.request(op, args, GATHER_TIMEOUT)
            except ClusterError as exc:
                log.warning("mgmt request to %s failed: %s", peer, exc)
                return None
        results = await asyncio.gather(*(ask(p) for p in peers))
        return dict(zip(peers, results))

    # -- per node --------------------------------------------------------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def local_nodes(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        node = self.node
        stats = node.broker.statistics()
        links: dict[str, str] = {}
        role = "core"
        service = self.service
        if service is not None:
            role = getattr(service, "role", "core")
            for peer in service.membership.status().running_nodes + \
                    service.membership.status().stopped_nodes:
                if peer != service.name:
                    links[peer] = "up" if service.peer_link(peer) is not None else "down"
        return [{
            "node": node.name,
            "node_status": "running",
            "version": __version__,
            "role": role,
            "uptime": int(node.uptime() * 1000),
            "connections": stats.connections,
            "live_connections": stats.connections,
            "sessions": stats.sessions,
            "subscriptions": stats.subscriptions,
            "retained": stats.retained,
            "routes": stats.routes,
            "listeners": [{"id": f"{lst.spec.type}:{lst.spec.name}",
                           "port": getattr(lst, "bound_port", None)}
                          for lst in node.listeners],
            "cluster_links": links,
            "started_at": int(self.started_wall * 1000),
        }]

    def local_stats(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        stats = self.node.broker.statistics()
        row = {"node": self.node.name,
               "connections.count": stats.connections,
               "live_connections.count": stats.connections,
               "channels.count": stats.channels,
               "sessions.count": stats.sessions,
               "subscriptions.count": stats.subscriptions,
               "subscriptions.shared.count": stats.shared_subscriptions,
               "suboptions.count": stats.subscriptions,
               "routes.count": stats.routes,
               "topics.count": stats.routes,
               "retained.count": stats.retained}
        service = self.service
        if service is not None:
            cs = service.statistics()
            row["cluster.routes.count"] = cs.routes
            row["cluster.running_nodes"] = cs.running_nodes
            row["cluster.stopped_nodes"] = cs.stopped_nodes
        return [row]

    def local_metrics(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        stats = self.node.broker.statistics()
        row: dict[str, Any] = {
            "node": self.node.name,
            "messages.received": stats.messages_received,
            "messages.sent": stats.messages_sent,
            "messages.dropped": stats.messages_dropped + self.node.dropped_backpressure(),
            "messages.qos0.received": stats.messages_received_qos[0],
            "messages.qos1.received": stats.messages_received_qos[1],
            "messages.qos2.received": stats.messages_received_qos[2],
            "messages.qos0.sent": stats.messages_sent_qos[0],
            "messages.qos1.sent": stats.messages_sent_qos[1],
            "messages.qos2.sent": stats.messages_sent_qos[2],
            "messages.forward": stats.messages_forwarded,
            "messages.from_peers": stats.messages_from_peers,
            "bytes.received": stats.bytes_received,
            "bytes.sent": stats.bytes_sent,
        }
        authz = getattr(self.node, "authorizer", None)
        if authz is not None:
            for key, value in _fields(authz.statistics()).items():
                row[f"authorization.{key}"] = value
        service = self.service
        links: dict[str, int] = {}
        if service is not None:
            cs = service.statistics()
            row["cluster.messages.forwarded"] = cs.messages_forwarded
            row["cluster.messages.received"] = cs.messages_received
            row["cluster.forwards_unacked"] = cs.forwards_unacked
            row["cluster.links"] = cs.links
            row["cluster.link.bytes.sent"] = cs.link_bytes_out
            row["cluster.link.bytes.received"] = cs.link_bytes_in
            row["cluster.link.messages.sent"] = cs.link_messages_out
            row["cluster.link.messages.received"] = cs.link_messages_in
            row["cluster.messages.relayed"] = cs.relayed
            status = service.membership.status()
            for peer in list(status.running_nodes) + list(status.stopped_nodes):
                if peer != service.name:
                    links[peer] = 1 if service.peer_link(peer) is not None else 0
        row["cluster.link_up"] = links
        return [row]

    def local_clients(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for session in self.node.broker.sessions:
            channel = session.channel
            info = getattr(channel, "client_info", None) if channel is not None else None
            peer = getattr(channel, "peer", "") if channel is not None else ""
            host, _, port = str(peer).rpartition(":")
            subs = session.subscriptions or {}
            rows.append({
                "clientid": session.client_id,
                "username": getattr(info, "username", None),
                "node": self.node.name,
                "connected": channel is not None and not channel.closed,
                "ip_address": host or None,
                "port": int(port) if port.isdigit() else None,
                "proto_ver": session.version,
                "keepalive": int(getattr(channel, "keep_alive", 0) or 0),
                "listener": getattr(channel, "listener", None),
                "expiry_interval": session.expiry_interval,
                "subscriptions_cnt": len(subs),
                "inflight_cnt": len(session.inflight or ()),
                "mqueue_len": len(session.queue or ()),
            })
        return rows

    def local_subscriptions(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for session in self.node.broker.sessions:
            for sub in (session.subscriptions or {}).values():
                rows.append({
                    "node": self.node.name,
                    "clientid": session.client_id,
                    "topic": sub.topic_filter,
                    "qos": int(sub.qos),
                    "nl": int(bool(sub.no_local)),
                    "rap": int(bool(sub.retain_as_published)),
                    "rh": int(sub.retain_handling),
                    "share_group": sub.group,
                })
        return rows

    def local_kick(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        client_id = _str(args, "clientid")
        kicked = bool(self.node.broker.kick(client_id, self._now()))
        session = self.node.broker.sessions.get(client_id)
        if session is not None and session.channel is None:
            # an offline session is discarded too (EMQX's DELETE /clients/{id})
            self.node.broker.discard_session(client_id, self._now())
            kicked = True
        return [{"node": self.node.name, "kicked": kicked}] if kicked else []

    def local_acl_reload(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        from mqttmesh import access

        authz = self.node.authorizer
        source = self.node.settings.authorization.sources.file
        if authz is None:
            return [{"node": self.node.name, "reloaded": False,
                     "reason": "no ACL installed (no file, no_match = allow)"}]
        try:
            acl = access.load_acl(source.path) if source.enable else None
        except (access.AclParseError, OSError) as exc:
            return [{"node": self.node.name, "reloaded": False, "reason": str(exc)}]
        authz.reload(acl)
        return [{"node": self.node.name, "reloaded": True,
                 "rules": len(getattr(acl, "rules", ()) or ())}]

    # -- replicated data (same on every node: answered locally) ---------------------------
    async def routes(self, args: dict[str, Any]) -> dict[str, Any]:
        service = self.service
        rows: list[dict[str, Any]] = []
        if service is None:
            for topic_filter in self.node.broker.local_filters():
                rows.append({"topic": topic_filter, "node": self.node.name})
        else:
            for node in sorted(service.routes.nodes()):
                for topic_filter in sorted(service.routes.filters_of(node)):
                    rows.append({"topic": topic_filter, "node": node})
        return {"rows": rows}

    async def retained(self, args: dict[str, Any]) -> dict[str, Any]:
        now = self._now()
        rows = []
        for message in list(self.node.broker.retained):
            if message.expiry_at is not None and message.expiry_at <= now:
                continue
            rows.append({
                "topic": message.topic,
                "payload": base64.b64encode(bytes(message.payload)).decode(),
                "qos": int(message.qos),
                "from_clientid": message.sender,
                "from_node": message.sender_node,
                "node": self.node.name,
            })
        rows.sort(key=lambda r: r["topic"])
        return {"rows": rows}

    async def retained_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        from mqttmesh.broker import Message

        topic = _topic(args)
        found = self.node.broker.retained.get(topic) is not None
        if found:
            # an empty retained publish deletes everywhere (cluster replication included)
            self.node.broker.publish(Message(topic, b"", 0, True, sender=None,
                                             sender_node=self.node.name), self._now())
        return {"deleted": found}

    async def publish(self, args: dict[str, Any]) -> dict[str, Any]:
        from mqttmesh.broker import Message

        topic = _topic(args)
        payload = args.get("payload", "")
        encoding = args.get("payload_encoding", "plain")
        if not isinstance(payload, str):
            raise ClusterError("payload must be a string")
        if encoding == "base64":
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ClusterError("payload is not valid base64") from None
        elif encoding == "plain":
            data = payload.encode()
        else:
            raise ClusterError("payload_encoding must be plain or base64")
        qos = args.get("qos", 0)
        if qos not in (0, 1, 2) or isinstance(qos, bool):
            raise ClusterError("qos must be 0, 1 or 2")
        retain = args.get("retain", False)
        if not isinstance(retain, bool):
            raise ClusterError("retain must be a boolean")
        message = Message(topic, data, qos, retain, sender=None, sender_node=self.node.name)
        delivered = self.node.broker.publish(message, self._now())
        return {"id": f"{message.id:x}", "node": self.node.name, "local_deliveries": delivered}

    # -- users -----------------------------------------------------------------------------
    def _users(self) -> Any:
        users = getattr(self.node, "users", None)
        if users is None:
            raise ClusterError("the user store is not available on this node")
        return users

    async def users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"rows": [{"user_id": u.username, "is_superuser": u.is_superuser}
                         for u in sorted(self._users().list_users(), key=lambda u: u.username)]}

    async def users_add(self, args: dict[str, Any]) -> dict[str, Any]:
        users = self._users()
        name, password = _str(args, "user_id"), _str(args, "password")
        if name in users:
            raise ClusterError(f"user {name} already exists")
        try:
            user = users.add_user(name, password, bool(args.get("is_superuser", False)))
        except MqttMeshError as exc:
            raise ClusterError(str(exc)) from None
        return await self._replicate(user)

    async def users_update(self, args: dict[str, Any]) -> dict[str, Any]:
        users = self._users()
        name = _str(args, "user_id")
        if name not in users:
            raise ClusterError(f"user {name} not found")
        password = args.get("password")
        if password is not None and (not isinstance(password, str) or not password):
            raise ClusterError("password must be a non-empty string")
        superuser = args.get("is_superuser")
        if superuser is not None and not isinstance(superuser, bool):
            raise ClusterError("is_superuser must be a boolean")
        try:
            user = users.update_user(name, password=password, is_superuser=superuser)
        except MqttMeshError as exc:
            raise ClusterError(str(exc)) from None
        return await self._replicate(user)

    async def _replicate(self, user: Any) -> dict[str, Any]:
        answers = await self.ask_members("mgmt.users_put", {"user": user.to_json()})
        return {"user_id": user.username, "is_superuser": user.is_superuser,
                "nodes": sorted([self.node.name] + [n for n, a in answers.items() if a]),
                "unreachable": sorted(n for n, a in answers.items() if not a)}

    async def users_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        users = self._users()
        name = _str(args, "user_id")
        if name not in users:
            raise ClusterError(f"user {name} not found")
        users.delete_user(name)
        answers = await self.ask_members("mgmt.users_remove", {"user_id": name})
        return {"user_id": name,
                "nodes": sorted([self.node.name] + [n for n, a in answers.items() if a]),
                "unreachable": sorted(n for n, a in answers.items() if not a)}

    async def users_put(self, args: dict[str, Any]) -> bool:
        from mqttmesh import access

        try:
            self._users().put_user(access.User.from_json(args.get("user")))
        except MqttMeshError as exc:
            raise ClusterError(str(exc)) from None
        return True

    async def users_remove(self, args: dict[str, Any]) -> bool:
        users = self._users()
        name = _str(args, "user_id")
        if name in users:
            users.delete_user(name)
        return True

    async def users_snapshot(self, args: dict[str, Any]) -> Any:
        return self._users().snapshot()

    async def on_joined(self, target: str) -> None:
        """After this node joined ``target``'s cluster: take its user table."""
        service, users = self.service, getattr(self.node, "users", None)
        if service is None or users is None:
            return
        link = service.peer_link(target)
        if link is None:
            log.warning("users not synced after join: no link to %s", target)
            return
        try:
            snapshot = await link.request("mgmt.users_snapshot", {}, GATHER_TIMEOUT)
            users.replace_all(snapshot)
        except (ClusterError, MqttMeshError) as exc:
            log.warning("users not synced after join with %s: %s", target, exc)


def _fields(obj: Any) -> dict[str, Any]:
    names = getattr(obj, "__dataclass_fields__", None) or {}
    return {n: getattr(obj, n) for n in names if isinstance(getattr(obj, n), (int, float))}


def _str(args: Any, key: str) -> str:
    value = args.get(key) if isinstance(args, dict) else None
    if not isinstance(value, str) or not value:
        raise ClusterError(f"missing argument {key}")
    return value


def _topic(args: Any) -> str:
    topic = _str(args, "topic")
    try:
        validate_topic_name(topic)
    except ProtocolError as exc:
        raise ClusterError(f"invalid topic name {topic[:80]!r}: {exc}") from None
    return topic


