"""The OpenAPI 3 document of the /api/v5 routes (served at /api/v5/openapi.json)."""

from __future__ import annotations

from typing import Any

from mqttmesh import __version__

__all__ = ["spec"]

_ERROR = {"type": "object", "required": ["code", "message"],
          "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}


def _param(p: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": p.type}
    if p.enum is not None:
        schema["enum"] = list(p.enum)
    if p.minimum is not None:
        schema["minimum"] = p.minimum
    if p.maximum is not None:
        schema["maximum"] = p.maximum
    if p.where == "path" and p.type == "string":
        schema["minLength"] = 1
    out = {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
           "schema": schema}
    if p.description:
        out["description"] = p.description
    return out


def spec(routes: list[Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for r in routes:
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": f"{r.method.lower()}_{r.path.strip('/').replace('/', '_')}"
                           .replace("{", "").replace("}", "").replace(":", "_"),
            "parameters": [_param(p) for p in r.params],
            "responses": {
                str(r.status): {"description": "success"} if r.status == 204 else {
                    "description": "success",
                    "content": {"text/plain" if r.raw else "application/json": {
                        "schema": {"type": "string"} if r.raw else {}}}},
                "400": {"description": "bad request",
                        "content": {"application/json": {"schema": _ERROR}}},
                "404": {"description": "not found",
                        "content": {"application/json": {"schema": _ERROR}}},
            },
        }
        if r.auth:
            op["responses"]["401"] = {"description": "authentication required",
                                      "content": {"application/json": {"schema": _ERROR}}}
        else:
            op["security"] = []
        if r.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": r.body}}}
        paths.setdefault(f"/api/v5{r.path}", {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "mqttmesh HTTP API", "version": __version__,
                 "description": "EMQX v5 shaped management API of an mqttmesh cluster."},
        "paths": paths,
        "components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "basicAuth": {"type": "http", "scheme": "basic"}}},
        "security": [{"bearerAuth": []}, {"basicAuth": []}],
    }
