"""Node management for the front-ends: clients, subscriptions, routes, retained, publish,
stats, metrics, users, ACL reload.

Every call goes to one node over the ctl request channel (``mgmt.cluster.call``, op
``mgmt.<name>``); that node answers for the whole cluster (``runtime/http_ops.py``), each row
tagged with its ``node``. Failures are ``ClusterError`` with a one-line reason.
"""

from __future__ import annotations

from typing import Any

from mqttmesh.mgmt import cluster

__all__ = [
    "request", "request_sync", "users_list", "users_add", "users_update", "users_delete",
    "acl_reload",
]

TIMEOUT = 15.0


async def request(settings: Any, op: str, args: dict[str, Any] | None = None,
                  timeout: float = TIMEOUT) -> Any:
    """Run ``mgmt.<op>`` on the node of ``settings`` (cluster-wide where it gathers)."""
    return await cluster.call(settings, f"mgmt.{op}", args or {}, timeout)


def request_sync(settings: Any, op: str, args: dict[str, Any] | None = None,
                 timeout: float = TIMEOUT) -> Any:
    """``request`` from synchronous code (the CLI)."""
    return cluster.call_sync(settings, f"mgmt.{op}", args or {}, timeout)


def users_list(settings: Any) -> list[dict[str, Any]]:
    return list(request_sync(settings, "users_list")["rows"])


def users_add(settings: Any, user_id: str, password: str,
              is_superuser: bool = False) -> dict[str, Any]:
    return dict(request_sync(settings, "users_add", {
        "user_id": user_id, "password": password, "is_superuser": is_superuser}))


def users_update(settings: Any, user_id: str, password: str | None = None,
                 is_superuser: bool | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"user_id": user_id}
    if password is not None:
        args["password"] = password
    if is_superuser is not None:
        args["is_superuser"] = is_superuser
    return dict(request_sync(settings, "users_update", args))


def users_delete(settings: Any, user_id: str) -> dict[str, Any]:
    return dict(request_sync(settings, "users_delete", {"user_id": user_id}))


def acl_reload(settings: Any) -> dict[str, Any]:
    return dict(request_sync(settings, "acl_reload"))
