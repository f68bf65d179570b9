"""A module-scoped three-node cluster with the HTTP API on, and a small HTTP client."""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster.cluster_nodes import ClusterNode, ctl, pick_offset, status_of
from tests.helpers import free_port
from tests.helpers.nodes import wait_until

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """HTTP client of one node's API (a new connection per request)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.token: str | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: Any = None, auth: Any = True,
                raw: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        hdrs = dict(headers or {})
        if auth is True and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        elif isinstance(auth, tuple):
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                f"{auth[0]}:{auth[1]}".encode()).decode()
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            res = conn.getresponse()
            return Answer(res.status, res.read(), {k.lower(): v for k, v in res.getheaders()})
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Any:
        answer = self.request("GET", path, **kw)
        assert answer.status == 200, (path, answer.status, answer.body[:300])
        return answer.json()

    def login(self, username: str = "admin", password: str = "public") -> str:
        answer = self.request("POST", "/api/v5/login",
                              {"username": username, "password": password}, auth=False)
        assert answer.status == 200, answer.body
        self.token = answer.json()["token"]
        return self.token


@dataclass
class ApiCluster:
    nodes: list[ClusterNode]
    apis: list[Api]

    @property
    def names(self) -> list[str]:
        return sorted(n.name for n in self.nodes)


@pytest.fixture(scope="module")
def api_cluster(tmp_path_factory) -> ApiCluster:
    base = tmp_path_factory.mktemp("api")
    offset = pick_offset()
    nodes, apis = [], []
    for i, host in enumerate(HOSTS):
        port = free_port(host)
        node = ClusterNode(base / f"n{i}", name=f"mqttmesh{offset}@{host}", config=(
            "dashboard.listeners.http.enable = true\n"
            f'dashboard.listeners.http.bind = "{host}:{port}"\n'
            "authentication.enable = true\n"
            "authentication.allow_anonymous = true\n"
            "authentication.password_hash.iterations = 1000\n"))
        nodes.append(node)
        apis.append(Api(host, port))
    for node in nodes:
        node.spawn()
    for node in nodes:
        node.wait_ready(20)
    for node in nodes[1:]:
        result = ctl(node, "cluster", "join", nodes[0].name)
        assert result.code == 0, result.err
    names = sorted(n.name for n in nodes)
    for node in nodes:
        wait_until(lambda node=node: status_of(node)["running_nodes"] == names, 10,
                   what=f"{node.name} sees every node")
    for api in apis:
        api.login()
    yield ApiCluster(nodes, apis)
    for node in nodes:
        node.stop(timeout=5)
