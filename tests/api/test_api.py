"""HTTP API against a real three-node cluster: every endpoint answers with rows from every
node; kick, users and force-leave act cluster-wide; bad input gives 4xx JSON; auth required.

Tests run in file order on one module-scoped cluster; force-leave (which shrinks it) is last.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse

import pytest

from tests.api.conftest import Api, ApiCluster
from tests.cluster.cluster_nodes import ctl, status_of
from tests.helpers import Client, ConnectFailed
from tests.helpers.clients import unique
from tests.helpers.nodes import wait_until

V5 = "/api/v5"
GETS = ["/nodes", "/cluster", "/clients", "/subscriptions", "/routes", "/topics",
        "/mqtt/retainer/messages", "/stats", "/metrics", "/prometheus/stats", "/api_key",
        "/authentication/password_based:built_in_database/users"]


def test_auth_required(api_cluster: ApiCluster) -> None:
    api = api_cluster.apis[0]
    for path in GETS:
        answer = api.request("GET", V5 + path, auth=False)
        assert answer.status == 401, path
        assert set(answer.json()) == {"code", "message"}
    assert api.request("GET", V5 + "/nodes", auth=False,
                       headers={"Authorization": "Bearer nonsense"}).status == 401
    bad = api.request("POST", V5 + "/login", {"username": "admin", "password": "wrong"},
                      auth=False)
    assert bad.status == 401 and bad.json()["code"] == "BAD_USERNAME_OR_PWD"
    # the admin password is stored hashed, never in the clear
    for node in api_cluster.nodes:
        text = (node.data_dir / "dashboard_users.json").read_text()
        assert "public" not in text and "pbkdf2_sha256" in text
    spec = api.get(V5 + "/openapi.json", auth=False)
    assert spec["openapi"].startswith("3.")
    assert {p.removeprefix(V5) for p in spec["paths"]} >= set(GETS)


def test_every_endpoint_has_rows_from_every_node(api_cluster: ApiCluster) -> None:
    names = api_cluster.names
    prefix = unique("api")
    clients = []
    try:
        for node in api_cluster.nodes:
            c = Client(node.port, host=node.host, version=5, client_id=f"{prefix}-{node.host}",
                       session_expiry=300)
            c.connect()
            c.subscribe(f"{prefix}/{node.host}/#", qos=1)
            clients.append(c)
        api = api_cluster.apis[1]
        nodes = api.get(V5 + "/nodes")
        assert sorted(n["node"] for n in nodes) == names
        assert all(n["node_status"] == "running" for n in nodes)
        one = api.get(V5 + "/nodes/" + urllib.parse.quote(names[2]))
        assert one["node"] == names[2] and one["connections"] >= 1
        cluster = api.get(V5 + "/cluster")
        assert cluster["running_nodes"] == names and cluster["stopped_nodes"] == []

        rows = api.get(V5 + f"/clients?like_clientid={prefix}")["data"]
        assert sorted(r["node"] for r in rows) == names
        assert all(r["connected"] for r in rows)
        for node in names:
            page = api.get(V5 + f"/clients?node={urllib.parse.quote(node)}&like_clientid={prefix}")
            assert [r["node"] for r in page["data"]] == [node]
        single = api.get(V5 + f"/clients/{prefix}-127.0.0.3")
        assert single["node"].endswith("@127.0.0.3")

        subs = [r for r in api.get(V5 + "/subscriptions?limit=1000")["data"]
                if r["clientid"].startswith(prefix)]
        assert sorted(r["node"] for r in subs) == names
        assert api.get(V5 + f"/subscriptions?match_topic={prefix}/127.0.0.2/x")["meta"]["count"] == 1

        def routed() -> list[str]:
            rows = api.get(V5 + "/routes?limit=10000")["data"]
            return sorted(r["node"] for r in rows if r["topic"].startswith(prefix))
        wait_until(lambda: routed() == names, 5, what="routes of every node")
        topics = api.get(V5 + "/topics?limit=10000")["data"]
        assert sorted(r["node"] for r in topics if r["topic"].startswith(prefix)) == names
        route = api.get(V5 + "/routes/" + urllib.parse.quote(f"{prefix}/127.0.0.1/#", safe=""))
        assert route[0]["node"].endswith("@127.0.0.1")

        # publish through the API on node 1 reaches a subscriber on node 3; retained everywhere
        sent = api_cluster.apis[0].request("POST", V5 + "/publish", {
            "topic": f"{prefix}/127.0.0.3/r", "payload": "hello", "qos": 1, "retain": True})
        assert sent.status == 200, sent.body
        assert clients[2].expect(topic=f"{prefix}/127.0.0.3/r").payload == b"hello"
        for other in api_cluster.apis:
            def has_retained(other: Api = other) -> bool:
                rows = other.get(V5 + f"/mqtt/retainer/messages?topic={prefix}/%23")["data"]
                return [r["topic"] for r in rows] == [f"{prefix}/127.0.0.3/r"]
            wait_until(has_retained, 5, what="retained replicated")
        enc = urllib.parse.quote(f"{prefix}/127.0.0.3/r", safe="")
        assert api.get(V5 + f"/mqtt/retainer/message/{enc}")["payload"] == "aGVsbG8="
        assert api.request("DELETE", V5 + f"/mqtt/retainer/message/{enc}").status == 204
        wait_until(lambda: api_cluster.apis[2].request(
            "GET", V5 + f"/mqtt/retainer/message/{enc}").status == 404, 5,
            what="retained delete replicated")

        stats = api.get(V5 + "/stats")
        assert sorted(r["node"] for r in stats) == names
        assert api.get(V5 + "/stats?aggregate=true")["connections.count"] >= 3
        metrics = api.get(V5 + "/metrics")
        assert sorted(r["node"] for r in metrics) == names
        assert all(set(r["cluster.link_up"].values()) == {1} for r in metrics)
        prom = api.request("GET", V5 + "/prometheus/stats")
        assert prom.status == 200 and prom.headers["content-type"].startswith("text/plain")
        text = prom.body.decode()
        for name in names:
            assert f'mqttmesh_connections_count{{node="{name}"' in text
            assert f'mqttmesh_node_up{{node="{name}"}} 1' in text
        assert "mqttmesh_messages_received{" in text and "mqttmesh_bytes_sent{" in text
        # per-QoS splits: every node has all six, they add up to the node's total, and the
        # QoS 1 publish above was delivered at QoS 1 on node 3
        samples = {(m[1], m[2]): int(m[3]) for m in re.finditer(
            r'^(mqttmesh_messages_\w+)\{node="([^"]+)"[^}]*\} (\d+)$', text, re.M)}
        for name in names:
            for d in ("received", "sent"):
                split = [samples[f"mqttmesh_messages_qos{q}_{d}", name] for q in (0, 1, 2)]
                assert sum(split) == samples[f"mqttmesh_messages_{d}", name], (name, d, split)
        row3 = next(r for r in metrics if r["node"] == names[2])
        assert row3["messages.qos1.sent"] >= 1
        assert all(sum(r[f"messages.qos{q}.{d}"] for q in (0, 1, 2)) == r[f"messages.{d}"]
                   for r in metrics for d in ("received", "sent"))
        assert text.count("mqttmesh_cluster_link_up{") == 6
    finally:
        for c in clients:
            c.close()


def test_kick_acts_cluster_wide(api_cluster: ApiCluster) -> None:
    node3 = api_cluster.nodes[2]
    client_id = unique("kick")
    c = Client(node3.port, host=node3.host, version=5, client_id=client_id)
    c.connect()
    try:
        api = api_cluster.apis[0]  # the request goes to node 1
        assert api.request("DELETE", V5 + f"/clients/{client_id}").status == 204
        wait_until(c._disconnected.is_set, 5, what="client kicked")
        assert c.disconnect_rc == 0x98  # Administrative action
        wait_until(lambda: api.request("GET", V5 + f"/clients/{client_id}").status == 404, 5,
                   what="client gone")
        gone = api.request("DELETE", V5 + f"/clients/{client_id}")
        assert gone.status == 404 and gone.json()["code"] == "CLIENTID_NOT_FOUND"
    finally:
        c.close()


def test_users_replicated_to_every_node(api_cluster: ApiCluster) -> None:
    users = V5 + "/authentication/password_based:built_in_database/users"
    user = unique("u")
    added = api_cluster.apis[0].request("POST", users, {"user_id": user, "password": "s3cret"})
    assert added.status == 201, added.body
    assert sorted(added.json()["nodes"]) == api_cluster.names
    for node in api_cluster.nodes:
        with Client(node.port, host=node.host, version=5, username=user, password="s3cret") as c:
            c.connect()
        bad = Client(node.port, host=node.host, version=5, username=user, password="nope")
        with pytest.raises(ConnectFailed) as info:
            bad.connect()
        bad.close()
        assert info.value.reason_code == 0x86
        assert "s3cret" not in (node.data_dir / "authn_users.json").read_text()
    # ctl on another node sees it; passwd via ctl (stdin) applies everywhere
    listed = ctl(api_cluster.nodes[1], "users", "list", "--json")
    assert user in [r["user_id"] for r in json.loads(listed.out)]
    proc = subprocess.run(
        [sys.executable, "-m", "mqttmesh", "ctl", "-c", str(api_cluster.nodes[1].config_path),
         "users", "passwd", user], input="changed\n", capture_output=True, text=True,
        env=api_cluster.nodes[1].environment(), timeout=30)
    assert proc.returncode == 0, proc.stderr
    node3 = api_cluster.nodes[2]
    with Client(node3.port, host=node3.host, version=5, username=user, password="changed") as c:
        c.connect()
    assert api_cluster.apis[2].request("DELETE", f"{users}/{user}").status == 204
    for api in api_cluster.apis:
        assert api.request("GET", f"{users}/{user}").status == 404
    assert ctl(node3, "acl", "reload").code == 0


def test_api_keys_basic_auth(api_cluster: ApiCluster) -> None:
    api = api_cluster.apis[0]
    name = unique("key").replace("-", "_")
    created = api.request("POST", V5 + "/api_key", {"name": name, "desc": "test"})
    assert created.status == 200, created.body
    key, secret = created.json()["api_key"], created.json()["api_secret"]
    assert api.get(V5 + "/nodes", auth=(key, secret))
    assert api.request("GET", V5 + "/nodes", auth=(key, "wrong")).status == 401
    assert secret not in (api_cluster.nodes[0].data_dir / "api_keys.json").read_text()
    assert "api_secret" not in api.get(V5 + f"/api_key/{name}")
    assert api.request("POST", V5 + "/api_key", {"name": name}).status == 400
    assert api.request("DELETE", V5 + f"/api_key/{name}").status == 204
    assert api.request("GET", V5 + "/nodes", auth=(key, secret)).status == 401


@pytest.mark.parametrize("method,path,body,raw,status", [
    ("POST", "/login", None, b"{not json", 400),
    ("POST", "/login", {"username": 1, "password": "x"}, None, 400),
    ("POST", "/login", {}, None, 400),
    ("POST", "/publish", {"topic": "a/+", "payload": "x"}, None, 400),
    ("POST", "/publish", {"topic": "a", "qos": 3}, None, 400),
    ("POST", "/publish", {"topic": "a", "payload": "%%", "payload_encoding": "base64"}, None,
     400),
    ("POST", "/publish", [1, 2], None, 400),
    ("GET", "/clients?page=0", None, None, 400),
    ("GET", "/clients?limit=abc", None, None, 400),
    ("GET", "/clients?conn_state=weird", None, None, 400),
    ("GET", "/stats?aggregate=maybe", None, None, 400),
    ("GET", "/nodes/nobody@127.0.0.9", None, None, 404),
    ("GET", "/no/such/endpoint", None, None, 404),
    ("PUT", "/nodes", None, None, 405),
    ("POST", "/cluster/join", {"node": "not a node name"}, None, 400),
    ("POST", "/cluster/join", {}, None, 400),
    ("DELETE", "/cluster/nobody@127.0.0.9", None, None, 400),
    ("GET", "/mqtt/retainer/messages?topic=a/%23/b", None, None, 400),
    ("GET", "/subscriptions?qos=7", None, None, 400),
    ("POST", "/authentication/password_based:built_in_database/users", {"user_id": "x"}, None,
     400),
    ("PUT", "/authentication/password_based:built_in_database/users/nobody", {}, None, 404),
])
def test_bad_requests_get_4xx_json(api_cluster: ApiCluster, method, path, body, raw,
                                   status) -> None:
    answer = api_cluster.apis[0].request(method, V5 + path, body, raw=raw)
    assert answer.status == status, answer.body
    doc = answer.json()
    assert isinstance(doc["code"], str) and isinstance(doc["message"], str)


def test_malformed_http_gets_400(api_cluster: ApiCluster) -> None:
    import socket

    api = api_cluster.apis[0]
    with socket.create_connection((api.host, api.port), timeout=5) as sock:
        sock.sendall(b"GARBAGE \x00\x01 nonsense\r\n\r\n")
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 400")
    assert api.get(V5 + "/cluster")  # still serving


def test_static_dashboard_files(api_cluster: ApiCluster) -> None:
    api = api_cluster.apis[0]
    index = api.request("GET", "/", auth=False)
    assert index.status == 200 and b"<canvas" in index.body
    for name, api_path in (("app.js", b"/api/v5"), ("style.css", b"body")):
        answer = api.request("GET", f"/{name}", auth=False)
        assert answer.status == 200 and api_path in answer.body
    js = api.request("GET", "/app.js", auth=False).body.decode()
    for used in ("/login", "/nodes", "/metrics?aggregate=true", "/clients", "/subscriptions",
                 "/routes", "/mqtt/retainer/messages", "/cluster/"):
        assert used in js  # every call the dashboard makes is an endpoint tested here
    assert api.request("GET", "/../pyproject.toml", auth=False).status == 404


def test_joiner_takes_the_user_table(api_cluster: ApiCluster, tmp_path) -> None:
    """A node that joins gets the users of the cluster (snapshot on join)."""
    from tests.cluster.cluster_nodes import ClusterNode

    users = V5 + "/authentication/password_based:built_in_database/users"
    user = unique("j")
    assert api_cluster.apis[0].request("POST", users, {"user_id": user,
                                                       "password": "pw"}).status == 201
    offset = api_cluster.nodes[0].name.split("@")[0].removeprefix("mqttmesh")
    joiner = ClusterNode(tmp_path / "n4", name=f"mqttmesh{offset}@127.0.0.4", config=(
        "authentication.enable = true\nauthentication.password_hash.iterations = 1000\n"))
    joiner.start(20)
    try:
        assert ctl(joiner, "users", "list", "--json").out.strip() == "[]"
        assert ctl(joiner, "cluster", "join", api_cluster.nodes[0].name).code == 0
        listed = json.loads(ctl(joiner, "users", "list", "--json").out)
        assert user in [r["user_id"] for r in listed]
        with Client(joiner.port, host=joiner.host, version=5, username=user, password="pw") as c:
            c.connect()
        assert ctl(joiner, "cluster", "leave").code == 0
    finally:
        joiner.stop(timeout=5)
    wait_until(lambda: api_cluster.apis[0].get(V5 + "/cluster")["running_nodes"]
               == api_cluster.names, 10, what="joiner gone")


def _browser():
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Debian chromium / chromium-driver not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def test_dashboard_in_headless_chromium(api_cluster: ApiCluster, tmp_path) -> None:
    """Log in, see all three nodes running and a live message rate; screenshot saved."""
    import threading

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    n1, n3 = api_cluster.nodes[0], api_cluster.nodes[2]
    topic = unique("dash")
    sub = Client(n3.port, host=n3.host, version=5)
    pub = Client(n1.port, host=n1.host, version=5)
    stop = threading.Event()
    try:
        sub.connect()
        sub.subscribe(f"{topic}/#")
        pub.connect()

        def traffic() -> None:
            while not stop.wait(0.02):
                pub.paho.publish(f"{topic}/x", b"tick", qos=0)
        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        api = api_cluster.apis[0]
        driver.get(api.base + "/")
        wait = WebDriverWait(driver, 15)
        driver.find_element(By.ID, "username").clear()
        driver.find_element(By.ID, "username").send_keys("admin")
        driver.find_element(By.ID, "password").send_keys("public")
        driver.find_element(By.ID, "login-button").click()

        def js(script: str):  # read the DOM in one go: tables are re-rendered every second
            return driver.execute_script(script)
        wait.until(lambda d: sorted(js(
            "return [...document.querySelectorAll('#nodes-table tbody tr.running "
            "td:first-child')].map(e => e.textContent)")) == api_cluster.names)

        def rate() -> float:
            text = js("return document.getElementById('t-in').textContent")
            return float(text) if text not in ("-", "") else 0.0
        wait.until(lambda d: rate() > 0)
        assert js("return document.getElementById('t-nodes').textContent") == "3 / 3"
        wait.until(lambda d: js("return samples.length") >= 3)  # the chart has a line
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        # other tabs render rows from the API
        driver.get(api.base + "/#subscriptions")
        wait.until(lambda d: topic in js(
            "return document.getElementById('subscriptions-table').textContent"))
        driver.get(api.base + "/#routes")
        wait.until(lambda d: topic in js(
            "return document.getElementById('routes-table').textContent"))
        driver.save_screenshot(str(tmp_path / "routes.png"))
    finally:
        stop.set()
        driver.quit()
        sub.close()
        pub.close()


def test_force_leave_acts_cluster_wide(api_cluster: ApiCluster) -> None:
    """Last test: node 3 dies, force-leave through node 1's API removes it everywhere."""
    n1, n2, n3 = api_cluster.nodes
    n3.kill()
    api = api_cluster.apis[0]
    wait_until(lambda: api.get(V5 + "/cluster")["stopped_nodes"] == [n3.name], 15,
               what="node 3 stopped")
    nodes = {n["node"]: n["node_status"] for n in api.get(V5 + "/nodes")}
    assert nodes[n3.name] == "stopped"
    answer = api.request("DELETE", V5 + "/cluster/" + urllib.parse.quote(n3.name))
    assert answer.status == 200, answer.body
    both = sorted([n1.name, n2.name])
    for node in (n1, n2):
        wait_until(lambda node=node: status_of(node) == {"running_nodes": both,
                                                         "stopped_nodes": []}, 10,
                   what="force-leave seen everywhere")
    assert sorted(n["node"] for n in api_cluster.apis[1].get(V5 + "/nodes")) == both
