"""The k8s strategy against a small HTTP fixture serving real core/v1 Endpoints JSON.

This is a fixture because no Kubernetes API server can run here. It answers
GET /api/v1/namespaces/{namespace}/endpoints/{service} like the API server does (the
Endpoints object below has the shape `kubectl get endpoints -o json` prints, including
notReadyAddresses and ports), checks the path and the `Authorization: Bearer <token>`
header, and answers 401 (Status JSON) to a wrong token and 404 to an unknown service.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mqttmesh.discovery import DiscoveryConfig, K8sConfig, make_strategy
from mqttmesh.errors import DiscoveryError

from .conftest import free_port, run

TOKEN = "eyJhbGciOiJSUzI1NiJ9.test-service-account-token"

ENDPOINTS = {
    "kind": "Endpoints",
    "apiVersion": "v1",
    "metadata": {
        "name": "mqttmesh-headless",
        "namespace": "mesh",
        "uid": "3f1c2d9e-0000-4000-8000-000000000001",
        "resourceVersion": "4242",
        "creationTimestamp": "2026-11-23T19:00:00Z",
        "labels": {"app.kubernetes.io/name": "mqttmesh"},
    },
    "subsets": [{
        "addresses": [
            {"ip": "10.244.1.7", "hostname": "mqttmesh-0", "nodeName": "worker-1",
             "targetRef": {"kind": "Pod", "namespace": "mesh", "name": "mqttmesh-0", "uid": "a1"}},
            {"ip": "10.244.2.9", "hostname": "mqttmesh-1", "nodeName": "worker-2",
             "targetRef": {"kind": "Pod", "namespace": "mesh", "name": "mqttmesh-1", "uid": "a2"}},
        ],
        "notReadyAddresses": [
            {"ip": "10.244.3.4", "hostname": "mqttmesh-2", "nodeName": "worker-3",
             "targetRef": {"kind": "Pod", "namespace": "mesh", "name": "mqttmesh-2", "uid": "a3"}},
        ],
        "ports": [{"name": "mqtt", "port": 1883, "protocol": "TCP"},
                  {"name": "dist", "port": 4370, "protocol": "TCP"}],
    }],
}


class ApiServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.requests.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._reply(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
                elif self.path == "/api/v1/namespaces/mesh/endpoints/mqttmesh-headless":
                    self._reply(200, ENDPOINTS)
                else:
                    self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "message": "endpoints not found", "reason": "NotFound", "code": 404})

            def _reply(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def apiserver() -> Iterator[ApiServer]:
    server = ApiServer()
    try:
        yield server
    finally:
        server.close()


def _strategy(apiserver: ApiServer, tmp_path: Path, *, token: str | None = TOKEN, service: str = "mqttmesh-headless",
              address_type: str = "ip", suffix: str = "pod.cluster.local"):
    token_path = tmp_path / "token"
    if token is not None:
        token_path.write_text(token + "\n")
    config = DiscoveryConfig(strategy="k8s", k8s=K8sConfig(
        apiserver=apiserver.url, service_name=service, address_type=address_type, namespace="mesh",
        suffix=suffix, token_path=str(token_path), ca_path=str(tmp_path / "ca.crt"), timeout=5.0))
    return make_strategy(config, "mqttmesh@10.244.1.7", "cookie")


@pytest.mark.parametrize(("address_type", "suffix", "expected"), [
    ("ip", "", ["mqttmesh@10.244.1.7", "mqttmesh@10.244.2.9"]),
    ("dns", "pod.cluster.local", ["mqttmesh@10-244-1-7.mesh.pod.cluster.local",
                                  "mqttmesh@10-244-2-9.mesh.pod.cluster.local"]),
    ("hostname", "svc.cluster.local", ["mqttmesh@mqttmesh-0.mqttmesh-headless.mesh.svc.cluster.local",
                                       "mqttmesh@mqttmesh-1.mqttmesh-headless.mesh.svc.cluster.local"]),
])
def test_endpoints_become_node_names(apiserver: ApiServer, tmp_path: Path,
                                     address_type: str, suffix: str, expected: list[str]) -> None:
    found = run(_strategy(apiserver, tmp_path, address_type=address_type, suffix=suffix).discover())
    assert found == expected
    assert apiserver.requests == [("/api/v1/namespaces/mesh/endpoints/mqttmesh-headless", f"Bearer {TOKEN}")]


def test_wrong_token_is_a_401_discovery_error(apiserver: ApiServer, tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"refused to show endpoints mesh/mqttmesh-headless \(401 Unauthorized\)"):
        run(_strategy(apiserver, tmp_path, token="stolen").discover())


def test_missing_token_file_sends_no_authorization(apiserver: ApiServer, tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="401"):
        run(_strategy(apiserver, tmp_path, token=None).discover())
    assert apiserver.requests == [("/api/v1/namespaces/mesh/endpoints/mqttmesh-headless", None)]


def test_unknown_service_is_a_404_discovery_error(apiserver: ApiServer, tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"k8s service endpoints mesh/nope not found \(404\)"):
        run(_strategy(apiserver, tmp_path, service="nope").discover())


def test_unreachable_apiserver_is_a_discovery_error(tmp_path: Path) -> None:
    config = DiscoveryConfig(strategy="k8s", k8s=K8sConfig(
        apiserver=f"http://127.0.0.1:{free_port()}", namespace="mesh", token_path=str(tmp_path / "none")))
    with pytest.raises(DiscoveryError, match="k8s API server unreachable at http://127.0.0.1:"):
        run(make_strategy(config, "mqttmesh@10.244.1.7", "cookie").discover())
