"""The HTTP API application: routing, authentication, errors, static dashboard files.

``make_app(node)`` returns the handler that ``runtime.http_server`` serves on
``dashboard.listeners.http``. Endpoints (``api/handlers.py``) parse, call ``mgmt`` and
format (STYLE rule 12). Every ``/api/v5`` path except ``/login`` and ``/openapi.json`` needs
``Authorization: Bearer <token>`` (from ``POST /api/v5/login``) or ``Basic key:secret`` (an
API key). Errors are JSON ``{"code": ..., "message": ...}``: 400 bad input, 401 no or bad
credentials, 404 unknown path or object, 405 method, 413 body too large; a 5xx means a bug
or an unreachable node, never bad input.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote

from mqttmesh.errors import ClusterError
from mqttmesh.mgmt import AdminError, AdminStore
from mqttmesh.runtime.http_server import HttpRequest, HttpResponse, json_response

__all__ = ["make_app", "App", "ApiError", "Route", "Param"]

log = logging.getLogger("mqttmesh.api")

PREFIX = "/api/v5"


class ApiError(Exception):
    """An answer other than 2xx: status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Param:
    name: str
    where: str = "query"            # query | path
    type: str = "string"            # string | integer | boolean
    required: bool = False
    description: str = ""
    enum: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str                        # "/clients/{clientid}" (under /api/v5)
    handler: Callable[..., Awaitable[Any]]
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None   # JSON schema of the body
    responses: dict[int, str] = field(default_factory=dict)
    auth: bool = True
    status: int = 200
    raw: bool = False                # handler returns an HttpResponse itself

    @property
    def regex(self) -> re.Pattern[str]:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(self.path).replace(
            r"\{", "{").replace(r"\}", "}"))
        return re.compile(f"^{PREFIX}{pattern}$")


@dataclass
class Ctx:
    """What a handler gets: the node's settings, the admin store, the parsed request."""

    app: App
    request: HttpRequest
    path: dict[str, str]
    query: dict[str, Any]
    body: Any
    user: str

    @property
    def settings(self) -> Any:
        return self.app.settings


class App:
    """The request handler of one node's HTTP listener."""

    def __init__(self, settings: Any, admin: AdminStore, routes: list[Route]) -> None:
        self.settings = settings
        self.admin = admin
        self.routes = routes
        self._compiled = [(r, r.regex) for r in routes]

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._handle(request)
        except ApiError as exc:
            headers = [("www-authenticate", 'Bearer realm="mqttmesh"')] \
                if exc.status == 401 else []
            return json_response(exc.status, {"code": exc.code, "message": exc.message},
                                 headers)

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if not path.startswith(PREFIX + "/") and path != PREFIX:
            return _static(request)
        allowed: list[str] = []
        for route, regex in self._compiled:
            match = regex.match(path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            user = self._authenticate(request) if route.auth else ""
            params = {k: unquote(v, errors="replace") for k, v in match.groupdict().items()}
            ctx = Ctx(self, request, params, _query(route, request.query),
                      _body(route, request), user)
            try:
                result = await route.handler(ctx)
            except ClusterError as exc:
                raise _from_cluster_error(exc) from None
            except AdminError as exc:
                raise ApiError(400, "BAD_REQUEST", str(exc)) from None
            if route.raw:
                assert isinstance(result, HttpResponse)
                return result
            if route.status == 204:
                return HttpResponse(204, b"")
            return json_response(route.status, result)
        if allowed:
            raise ApiError(405, "METHOD_NOT_ALLOWED",
                           f"{request.method} not allowed here; use {', '.join(sorted(set(allowed)))}")
        raise ApiError(404, "NOT_FOUND", f"no such endpoint {path[:200]}")

    def _authenticate(self, request: HttpRequest) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value:
            user = self.admin.check_token(value.strip())
            if user is not None:
                return user
            raise ApiError(401, "BAD_TOKEN", "token is invalid or expired; log in again")
        if scheme == "basic" and value:
            try:
                key, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise ApiError(401, "BAD_API_KEY_OR_SECRET", "malformed Basic credentials") from None
            name = self.admin.check_key(key, secret)
            if name is not None:
                return f"api_key:{name}"
            raise ApiError(401, "BAD_API_KEY_OR_SECRET", "API key or secret is wrong")
        raise ApiError(401, "BAD_USERNAME_OR_PWD",
                       "authentication required: Bearer token (POST /api/v5/login) or "
                       "Basic api_key:api_secret")


def _from_cluster_error(exc: ClusterError) -> ApiError:
    text = str(exc)
    lowered = text.lower()
    if "not found" in lowered:
        return ApiError(404, "NOT_FOUND", text)
    if "is not running or unreachable" in lowered or "refused this command" in lowered:
        return ApiError(503, "SERVICE_UNAVAILABLE", text)
    return ApiError(400, "BAD_REQUEST", text)


def _query(route: Route, raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in route.params:
        if p.where != "query":
            continue
        if p.name not in raw:
            if p.required:
                raise ApiError(400, "BAD_REQUEST", f"missing query parameter {p.name}")
            continue
        out[p.name] = _convert(p, raw[p.name])
    return out


def _convert(p: Param, text: str) -> Any:
    value: Any = text
    if p.type == "integer":
        try:
            value = int(text)
        except ValueError:
            raise ApiError(400, "BAD_REQUEST", f"{p.name} must be an integer") from None
        if (p.minimum is not None and value < p.minimum) or \
                (p.maximum is not None and value > p.maximum):
            raise ApiError(400, "BAD_REQUEST",
                           f"{p.name} must be between {p.minimum} and {p.maximum}")
    elif p.type == "boolean":
        if text.lower() not in ("true", "false"):
            raise ApiError(400, "BAD_REQUEST", f"{p.name} must be true or false")
        value = text.lower() == "true"
    if p.enum is not None and value not in p.enum:
        raise ApiError(400, "BAD_REQUEST", f"{p.name} must be one of {', '.join(map(str, p.enum))}")
    return value


def _body(route: Route, request: HttpRequest) -> Any:
    if route.body is None:
        return None
    if not request.body:
        body: Any = {}
    else:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "BAD_REQUEST", "the body is not valid JSON") from None
    problem = check_schema(route.body, body, "body")
    if problem:
        raise ApiError(400, "BAD_REQUEST", problem)
    return body


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def check_schema(schema: dict[str, Any], value: Any, where: str) -> str | None:
    """The small JSON-schema subset the routes use; a message naming the problem, or None."""
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        return f"{where} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {', '.join(map(str, schema['enum']))}"
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            return f"{where} must not be empty"
        if len(value) > schema.get("maxLength", 1 << 20):
            return f"{where} is too long"
    if kind == "integer":
        if value < schema.get("minimum", -(1 << 63)) or value > schema.get("maximum", 1 << 63):
            return f"{where} is out of range"
    if kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                return f"{where}.{name} is required"
        for name, sub in schema.get("properties", {}).items():
            if name in value and value[name] is not None:
                problem = check_schema(sub, value[name], f"{where}.{name}")
                if problem:
                    return problem
            elif name in value and not sub.get("nullable"):
                return f"{where}.{name} must not be null"
    return None


# -- static files (the dashboard) -----------------------------------------------------------
def _static(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        raise ApiError(405, "METHOD_NOT_ALLOWED", "static files are GET only")
    name = request.path.lstrip("/") or "index.html"
    if not re.fullmatch(r"[A-Za-z0-9_-]+\.(html|js|css|svg|ico)", name):
        raise ApiError(404, "NOT_FOUND", f"no such file {request.path[:200]}")
    try:
        data = resources.files("mqttmesh.api").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, OSError):
        raise ApiError(404, "NOT_FOUND", f"no such file {request.path[:200]}") from None
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype.endswith("javascript"):
        ctype += "; charset=utf-8"
    return HttpResponse(200, b"" if request.method == "HEAD" else data, ctype)


def make_app(node: Any) -> App:
    """The handler for ``node``'s dashboard listener (``Node.http_app_factory``)."""
    from mqttmesh.api.handlers import ROUTES

    s = node.settings
    dash = s.dashboard
    admin = AdminStore(s.node.data_dir, dash.default_username, dash.default_password,
                       dash.token_expired_time)
    return App(s, admin, ROUTES)
