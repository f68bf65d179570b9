"""Hypothesis fuzz of the served OpenAPI spec: random paths, query strings and bodies against a
real node never get a 5xx, and every error is JSON ``{"code", "message"}``.

Operations that change membership or the session (join, leave, logout, change_pwd) are left
out; everything else is fuzzed on a standalone node with the HTTP API on.
"""

from __future__ import annotations

import json
import string
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api
from tests.cluster.cluster_nodes import ClusterNode, pick_offset
from tests.helpers import free_port

SKIP = {("post", "/api/v5/cluster/join"), ("post", "/api/v5/cluster/leave"),
        ("post", "/api/v5/logout"), ("post", "/api/v5/users/{username}/change_pwd")}


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory):
    host = "127.0.0.1"
    port = free_port(host)
    node = ClusterNode(tmp_path_factory.mktemp("fuzz"), name=f"mqttmesh{pick_offset()}@{host}",
                       config=("dashboard.listeners.http.enable = true\n"
                               f'dashboard.listeners.http.bind = "{host}:{port}"\n'
                               "authentication.password_hash.iterations = 1000\n"))
    node.start(20)
    api = Api(host, port)
    api.login()
    spec = api.get("/api/v5/openapi.json", auth=False)
    ops = [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items()
           if (m, p) not in SKIP]
    yield api, ops
    node.stop(timeout=5)


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), text,
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(text, c, max_size=4)), max_leaves=10)


def value_for(schema: dict) -> st.SearchStrategy:
    """A value that often fits the schema (so the handler runs) and sometimes does not."""
    kind = schema.get("type")
    fitting: st.SearchStrategy
    if "enum" in schema:
        fitting = st.sampled_from(schema["enum"])
    elif kind == "integer":
        fitting = st.integers(schema.get("minimum", -5) - 1, schema.get("maximum", 5) + 1)
    elif kind == "boolean":
        fitting = st.booleans()
    elif kind == "object":
        props = schema.get("properties", {})
        fitting = st.fixed_dictionaries(
            {k: value_for(v) for k, v in props.items() if k in schema.get("required", [])},
            optional={k: value_for(v) for k, v in props.items()
                      if k not in schema.get("required", [])})
    else:
        fitting = st.one_of(text, st.text(alphabet=string.ascii_letters + "/+#$@.", max_size=20))
    return st.one_of(fitting, fitting, fitting, json_values)


@st.composite
def requests(draw, ops):
    method, path, op = ops[draw(st.integers(0, len(ops) - 1))]
    for p in op.get("parameters", []):
        if p["in"] == "path":
            raw = str(draw(value_for(p["schema"])))
            path = path.replace("{" + p["name"] + "}", urllib.parse.quote(raw, safe="") or "x")
    query = {}
    for p in op.get("parameters", []):
        if p["in"] == "query" and draw(st.booleans()):
            value = draw(value_for(p["schema"]))
            query[p["name"]] = json.dumps(value) if not isinstance(value, str) else value
    if query:
        path += "?" + urllib.parse.urlencode(query)
    body = None
    if "requestBody" in op:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        choice = draw(st.integers(0, 3))
        if choice == 3:
            body = draw(st.binary(max_size=60))
        else:
            body = json.dumps(draw(value_for(schema) if choice < 2 else json_values)).encode()
    return method.upper(), path, body


def test_openapi_fuzz_no_5xx(fuzz_api) -> None:
    api, ops = fuzz_api
    assert len(ops) >= 25
    seen: set[int] = set()

    @settings(max_examples=400, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests(ops))
    def check(req) -> None:
        method, path, body = req
        answer = api.request(method, path, raw=body)
        seen.add(answer.status)
        assert answer.status < 500, (method, path, body, answer.body[:300])
        if answer.status >= 400:
            doc = answer.json()
            assert isinstance(doc.get("code"), str) and isinstance(doc.get("message"), str)

    check()
    assert {200, 400, 404} <= seen, seen  # handlers ran, and bad input was refused
    assert api.get("/api/v5/cluster")  # still serving
