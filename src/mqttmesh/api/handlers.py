"""The /api/v5 endpoints: parse, call mgmt, format (EMQX v5 shapes, every row with its node)."""

from __future__ import annotations

from typing import Any

from mqttmesh import __version__
from mqttmesh.api.app import ApiError, Ctx, Param, Route
from mqttmesh.mgmt import cluster, ops
from mqttmesh.runtime.http_server import HttpResponse

__all__ = ["ROUTES"]

PAGE = (Param("page", type="integer", minimum=1, maximum=1_000_000, description="page, from 1"),
        Param("limit", type="integer", minimum=1, maximum=10_000, description="rows per page"))
USERS = "/authentication/password_based:built_in_database/users"


def _page(ctx: Ctx, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    page, limit = ctx.query.get("page", 1), ctx.query.get("limit", 100)
    start = (page - 1) * limit
    meta = {"page": page, "limit": limit, "count": len(rows),
            "hasnext": start + limit < len(rows)}
    if extra:
        meta.update(extra)
    return {"data": rows[start:start + limit], "meta": meta}


async def _rows(ctx: Ctx, op: str, args: dict[str, Any] | None = None) -> tuple[list[Any], list[str]]:
    answer = await ops.request(ctx.settings, op, args)
    return list(answer.get("rows", [])), list(answer.get("unreachable", []))


def _matches(row: dict[str, Any], ctx: Ctx, exact: tuple[str, ...],
             like: dict[str, str] | None = None) -> bool:
    for key in exact:
        if key in ctx.query and row.get(key) != ctx.query[key]:
            return False
    for param, key in (like or {}).items():
        if param in ctx.query and ctx.query[param] not in str(row.get(key) or ""):
            return False
    return True


# -- login, API keys ------------------------------------------------------------------------
async def login(ctx: Ctx) -> dict[str, Any]:
    try:
        token = ctx.app.admin.login(ctx.body["username"], ctx.body["password"])
    except Exception:
        raise ApiError(401, "BAD_USERNAME_OR_PWD", "wrong username or password") from None
    return {"token": token, "version": __version__, "role": "administrator"}


async def logout(ctx: Ctx) -> None:
    header = ctx.request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        ctx.app.admin.logout(header[7:].strip())


async def change_pwd(ctx: Ctx) -> None:
    if ctx.path["username"] != ctx.user:
        raise ApiError(400, "BAD_REQUEST", "you may change only your own password")
    ctx.app.admin.change_password(ctx.user, ctx.body["old_pwd"], ctx.body["new_pwd"])


async def api_key_list(ctx: Ctx) -> list[dict[str, Any]]:
    return ctx.app.admin.list_keys()


async def api_key_create(ctx: Ctx) -> dict[str, Any]:
    b = ctx.body
    return ctx.app.admin.create_key(b["name"], b.get("desc") or "", b.get("enable", True),
                                    b.get("expired_at"))


async def api_key_get(ctx: Ctx) -> dict[str, Any]:
    key = ctx.app.admin.get_key(ctx.path["name"])
    if key is None:
        raise ApiError(404, "NOT_FOUND", f"API key {ctx.path['name'][:100]} not found")
    return key


async def api_key_delete(ctx: Ctx) -> None:
    if not ctx.app.admin.delete_key(ctx.path["name"]):
        raise ApiError(404, "NOT_FOUND", f"API key {ctx.path['name'][:100]} not found")


# -- nodes, cluster -------------------------------------------------------------------------
async def _nodes(ctx: Ctx) -> list[dict[str, Any]]:
    rows, _ = await _rows(ctx, "nodes")
    status = await cluster.call(ctx.settings, "status")
    seen = {r["node"] for r in rows}
    for name in status.get("stopped_nodes", []) + status.get("running_nodes", []):
        if name not in seen:
            rows.append({"node": name, "node_status": "stopped"})
    return sorted(rows, key=lambda r: r["node"])


async def nodes(ctx: Ctx) -> list[dict[str, Any]]:
    return await _nodes(ctx)


async def node_get(ctx: Ctx) -> dict[str, Any]:
    for row in await _nodes(ctx):
        if row["node"] == ctx.path["node"]:
            return row
    raise ApiError(404, "NOT_FOUND", f"node {ctx.path['node'][:100]} not found")


async def cluster_status(ctx: Ctx) -> dict[str, Any]:
    status = await cluster.call(ctx.settings, "status")
    return {"name": ctx.settings.cluster.name, "self": ctx.settings.node.name, **status,
            "nodes": sorted(status["running_nodes"] + status["stopped_nodes"]),
            "roles": {row["name"]: row["role"] for row in status.get("nodes", [])}}


async def cluster_topology(ctx: Ctx) -> list[dict[str, Any]]:
    """EMQX 5 shape: ``[{"core_node": ..., "replicant_nodes": [{"node": ...}]}]``."""
    return list((await cluster.call(ctx.settings, "topology"))["topology"])


async def cluster_join(ctx: Ctx) -> dict[str, Any]:
    return dict(await cluster.call(ctx.settings, "join", {"node": ctx.body["node"]}))


async def cluster_leave(ctx: Ctx) -> dict[str, Any]:
    return dict(await cluster.call(ctx.settings, "leave"))


async def cluster_force_leave(ctx: Ctx) -> dict[str, Any]:
    return dict(await cluster.call(ctx.settings, "force_leave", {"node": ctx.path["node"]}))


# -- clients, subscriptions, routes, topics -------------------------------------------------
async def clients(ctx: Ctx) -> dict[str, Any]:
    rows, unreachable = await _rows(ctx, "clients")
    q = ctx.query
    if "conn_state" in q:
        want = q["conn_state"] == "connected"
        rows = [r for r in rows if r["connected"] is want]
    rows = [r for r in rows if _matches(r, ctx, ("clientid", "username", "node", "ip_address"),
                                        {"like_clientid": "clientid",
                                         "like_username": "username"})]
    rows.sort(key=lambda r: (r["clientid"], r["node"]))
    return _page(ctx, rows, {"unreachable": unreachable})


async def client_get(ctx: Ctx) -> dict[str, Any]:
    rows, _ = await _rows(ctx, "clients")
    for row in rows:
        if row["clientid"] == ctx.path["clientid"]:
            return row
    raise ApiError(404, "CLIENTID_NOT_FOUND", f"client {ctx.path['clientid'][:100]} not found")


async def client_kick(ctx: Ctx) -> None:
    rows, _ = await _rows(ctx, "kick", {"clientid": ctx.path["clientid"]})
    if not rows:
        raise ApiError(404, "CLIENTID_NOT_FOUND", f"client {ctx.path['clientid'][:100]} not found")


async def client_subscriptions(ctx: Ctx) -> list[dict[str, Any]]:
    rows, _ = await _rows(ctx, "subscriptions")
    return [r for r in rows if r["clientid"] == ctx.path["clientid"]]


async def subscriptions(ctx: Ctx) -> dict[str, Any]:
    rows, unreachable = await _rows(ctx, "subscriptions")
    rows = [r for r in rows if _matches(r, ctx, ("clientid", "topic", "qos", "node",
                                                 "share_group"))]
    if "match_topic" in ctx.query:
        from mqttmesh.protocol import matches

        try:
            rows = [r for r in rows if matches(r["topic"].split("/", 2)[-1]
                                               if r["topic"].startswith("$share/") else r["topic"],
                                               ctx.query["match_topic"])]
        except Exception:
            raise ApiError(400, "BAD_REQUEST", "match_topic is not a valid topic") from None
    rows.sort(key=lambda r: (r["topic"], r["clientid"], r["node"]))
    return _page(ctx, rows, {"unreachable": unreachable})


async def routes(ctx: Ctx) -> dict[str, Any]:
    rows, _ = await _rows(ctx, "routes")
    rows = [r for r in rows if _matches(r, ctx, ("topic", "node"))]
    return _page(ctx, rows)


async def route_get(ctx: Ctx) -> list[dict[str, Any]]:
    rows, _ = await _rows(ctx, "routes")
    found = [r for r in rows if r["topic"] == ctx.path["topic"]]
    if not found:
        raise ApiError(404, "TOPIC_NOT_FOUND", f"no route for {ctx.path['topic'][:100]}")
    return found


# -- retained, publish -----------------------------------------------------------------------
async def retained(ctx: Ctx) -> dict[str, Any]:
    rows, _ = await _rows(ctx, "retained")
    if "topic" in ctx.query:
        from mqttmesh.errors import ProtocolError
        from mqttmesh.protocol import matches, validate_topic_filter

        try:
            validate_topic_filter(ctx.query["topic"], 128)
        except ProtocolError as exc:
            raise ApiError(400, "BAD_REQUEST", f"topic is not a valid filter: {exc}") from None
        rows = [r for r in rows if matches(ctx.query["topic"], r["topic"])]
    return _page(ctx, rows)


async def retained_get(ctx: Ctx) -> dict[str, Any]:
    rows, _ = await _rows(ctx, "retained")
    for row in rows:
        if row["topic"] == ctx.path["topic"]:
            return row
    raise ApiError(404, "NOT_FOUND", f"no retained message on {ctx.path['topic'][:100]}")


async def retained_delete(ctx: Ctx) -> None:
    answer = await ops.request(ctx.settings, "retained_delete", {"topic": ctx.path["topic"]})
    if not answer.get("deleted"):
        raise ApiError(404, "NOT_FOUND", f"no retained message on {ctx.path['topic'][:100]}")


async def publish(ctx: Ctx) -> dict[str, Any]:
    return dict(await ops.request(ctx.settings, "publish", ctx.body))


# -- stats, metrics, prometheus ---------------------------------------------------------------
def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    for key in ("cluster.running_nodes", "cluster.stopped_nodes", "cluster.routes.count"):
        if key in total:
            total[key] = max(r.get(key, 0) for r in rows)
    return total


async def stats(ctx: Ctx) -> Any:
    rows, _ = await _rows(ctx, "stats")
    return _aggregate(rows) if ctx.query.get("aggregate") else sorted(rows, key=lambda r: r["node"])


async def metrics(ctx: Ctx) -> Any:
    rows, _ = await _rows(ctx, "metrics")
    return _aggregate(rows) if ctx.query.get("aggregate") else sorted(rows, key=lambda r: r["node"])


async def prometheus(ctx: Ctx) -> HttpResponse:
    from mqttmesh.api.prometheus import render

    stat_rows, unreachable = await _rows(ctx, "stats")
    metric_rows, _ = await _rows(ctx, "metrics")
    text = render(ctx.settings.cluster.name, stat_rows, metric_rows, unreachable)
    return HttpResponse(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")


# -- built-in users, ACL ----------------------------------------------------------------------
async def users_list(ctx: Ctx) -> dict[str, Any]:
    rows = list((await ops.request(ctx.settings, "users_list"))["rows"])
    if "like_user_id" in ctx.query:
        rows = [r for r in rows if ctx.query["like_user_id"] in r["user_id"]]
    return _page(ctx, rows)


async def users_add(ctx: Ctx) -> dict[str, Any]:
    b = ctx.body
    return dict(await ops.request(ctx.settings, "users_add", {
        "user_id": b["user_id"], "password": b["password"],
        "is_superuser": b.get("is_superuser", False)}))


async def users_get(ctx: Ctx) -> dict[str, Any]:
    for row in (await ops.request(ctx.settings, "users_list"))["rows"]:
        if row["user_id"] == ctx.path["user_id"]:
            return dict(row)
    raise ApiError(404, "NOT_FOUND", f"user {ctx.path['user_id'][:100]} not found")


async def users_update(ctx: Ctx) -> dict[str, Any]:
    args: dict[str, Any] = {"user_id": ctx.path["user_id"]}
    for key in ("password", "is_superuser"):
        if ctx.body.get(key) is not None:
            args[key] = ctx.body[key]
    return dict(await ops.request(ctx.settings, "users_update", args))


async def users_delete(ctx: Ctx) -> None:
    await ops.request(ctx.settings, "users_delete", {"user_id": ctx.path["user_id"]})


async def acl_reload(ctx: Ctx) -> dict[str, Any]:
    rows, unreachable = await _rows(ctx, "acl_reload")
    return {"nodes": rows, "unreachable": unreachable}


async def openapi(ctx: Ctx) -> dict[str, Any]:
    from mqttmesh.api.openapi import spec

    return spec(ROUTES)


def _str(max_len: int = 65535, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_len, **kw}


NODE = Param("node", "path", required=True, description="node name, name@host")
CLIENTID = Param("clientid", "path", required=True)
TOPIC_PATH = Param("topic", "path", required=True, description="topic, URL-encoded")
NAME = Param("name", "path", required=True)
USER_ID = Param("user_id", "path", required=True)
AGG = (Param("aggregate", type="boolean", description="sum over the cluster"),)

ROUTES: list[Route] = [
    Route("POST", "/login", login, "Log in: a bearer token", "auth", auth=False,
          body={"type": "object", "required": ["username", "password"],
                "properties": {"username": _str(256), "password": _str(256)}}),
    Route("POST", "/logout", logout, "Invalidate this token", "auth", status=204),
    Route("POST", "/users/{username}/change_pwd", change_pwd, "Change the admin password",
          "auth", params=(Param("username", "path", required=True),), status=204,
          body={"type": "object", "required": ["old_pwd", "new_pwd"],
                "properties": {"old_pwd": _str(256), "new_pwd": _str(256)}}),
    Route("GET", "/api_key", api_key_list, "List API keys", "api_key"),
    Route("POST", "/api_key", api_key_create, "Create an API key (secret shown once)", "api_key",
          body={"type": "object", "required": ["name"],
                "properties": {"name": _str(128, pattern="^[A-Za-z0-9_-]+$"),
                               "desc": {"type": "string", "maxLength": 1024, "nullable": True},
                               "enable": {"type": "boolean"},
                               "expired_at": {"type": "integer", "minimum": 0,
                                              "nullable": True}}}),
    Route("GET", "/api_key/{name}", api_key_get, "One API key", "api_key", params=(NAME,)),
    Route("DELETE", "/api_key/{name}", api_key_delete, "Delete an API key", "api_key",
          params=(NAME,), status=204),
    Route("GET", "/nodes", nodes, "Every node of the cluster", "nodes"),
    Route("GET", "/nodes/{node}", node_get, "One node", "nodes", params=(NODE,)),
    Route("GET", "/cluster", cluster_status, "Cluster status", "cluster"),
    Route("GET", "/cluster/topology", cluster_topology,
          "Cores and the replicants following each", "cluster"),
    Route("POST", "/cluster/join", cluster_join, "This node joins the cluster of node",
          "cluster", body={"type": "object", "required": ["node"],
                           "properties": {"node": _str(255)}}),
    Route("POST", "/cluster/leave", cluster_leave, "This node leaves its cluster", "cluster"),
    Route("DELETE", "/cluster/{node}", cluster_force_leave, "Force another node out",
          "cluster", params=(NODE,)),
    Route("DELETE", "/cluster/{node}/force_leave", cluster_force_leave,
          "Force another node out (EMQX path)", "cluster", params=(NODE,)),
    Route("GET", "/clients", clients, "Clients of every node", "clients", params=PAGE + (
        Param("node"), Param("clientid"), Param("username"), Param("ip_address"),
        Param("like_clientid"), Param("like_username"),
        Param("conn_state", enum=("connected", "disconnected")))),
    Route("GET", "/clients/{clientid}", client_get, "One client", "clients", params=(CLIENTID,)),
    Route("DELETE", "/clients/{clientid}", client_kick, "Kick a client (wherever it is)",
          "clients", params=(CLIENTID,), status=204),
    Route("GET", "/clients/{clientid}/subscriptions", client_subscriptions,
          "A client's subscriptions", "clients", params=(CLIENTID,)),
    Route("GET", "/subscriptions", subscriptions, "Subscriptions of every node",
          "subscriptions", params=PAGE + (
              Param("node"), Param("clientid"), Param("topic"), Param("share_group"),
              Param("match_topic"), Param("qos", type="integer", minimum=0, maximum=2))),
    Route("GET", "/routes", routes, "The cluster route table", "routes",
          params=PAGE + (Param("topic"), Param("node"))),
    Route("GET", "/routes/{topic}", route_get, "Routes of one filter", "routes",
          params=(TOPIC_PATH,)),
    Route("GET", "/topics", routes, "Routed topics (as /routes)", "routes",
          params=PAGE + (Param("topic"), Param("node"))),
    Route("GET", "/mqtt/retainer/messages", retained, "Retained messages", "retainer",
          params=PAGE + (Param("topic", description="a filter"),)),
    Route("GET", "/mqtt/retainer/message/{topic}", retained_get, "One retained message",
          "retainer", params=(TOPIC_PATH,)),
    Route("DELETE", "/mqtt/retainer/message/{topic}", retained_delete,
          "Delete a retained message (cluster-wide)", "retainer", params=(TOPIC_PATH,),
          status=204),
    Route("POST", "/publish", publish, "Publish a message", "publish",
          body={"type": "object", "required": ["topic"],
                "properties": {"topic": _str(), "payload": {"type": "string"},
                               "qos": {"type": "integer", "minimum": 0, "maximum": 2},
                               "retain": {"type": "boolean"},
                               "payload_encoding": {"type": "string",
                                                    "enum": ["plain", "base64"]}}}),
    Route("GET", "/stats", stats, "Counts per node", "metrics", params=AGG),
    Route("GET", "/metrics", metrics, "Message and byte counters per node", "metrics",
          params=AGG),
    Route("GET", "/prometheus/stats", prometheus, "Prometheus text format", "metrics",
          raw=True),
    Route("GET", USERS, users_list, "Built-in database users", "authentication",
          params=PAGE + (Param("like_user_id"),)),
    Route("POST", USERS, users_add, "Add a user (every node)", "authentication", status=201,
          body={"type": "object", "required": ["user_id", "password"],
                "properties": {"user_id": _str(256), "password": _str(1024),
                               "is_superuser": {"type": "boolean"}}}),
    Route("GET", USERS + "/{user_id}", users_get, "One user", "authentication",
          params=(USER_ID,)),
    Route("PUT", USERS + "/{user_id}", users_update, "Change a user (every node)",
          "authentication", params=(USER_ID,),
          body={"type": "object", "properties": {"password": _str(1024),
                                                 "is_superuser": {"type": "boolean"}}}),
    Route("DELETE", USERS + "/{user_id}", users_delete, "Delete a user (every node)",
          "authentication", params=(USER_ID,), status=204),
    Route("POST", "/authorization/sources/file/reload", acl_reload,
          "Reload the ACL file on every node", "authorization"),
    Route("GET", "/openapi.json", openapi, "This document", "docs", auth=False),
]
