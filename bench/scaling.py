#!/usr/bin/env python3
"""Cluster scaling benchmark: 1, 2, 4, 8 mqttmesh nodes on this machine.

Run from the repository root:

    .venv/bin/python bench/scaling.py                     # cores layout, N = 1,2,4,8, 3 runs
    .venv/bin/python bench/scaling.py --quick             # N = 1,2,4, 1 run, short windows
    .venv/bin/python bench/scaling.py --layout replicants # 2 cores + N-2 replicants

Each node is its own process (`.venv/bin/python -m mqttmesh foreground`), configured by
environment variables only: node i is `scale<K>@127.0.0.<i>` (the same K for every node, so
they all use cluster ports 4370+K / 5370+K on different loopback addresses), MQTT on
127.0.0.<i>:<free port>, static discovery with every core as a seed, one cookie.

For every cluster size N it measures:
1. throughput (QoS 0 and QoS 1): the C load generator (`bench/build/loadgen --nodes`) puts
   the publishers of topic t on node t mod N and its subscriber on node (t+1) mod N, so with
   N >= 2 every message crosses nodes once; aggregate delivered msg/s, and every node's CPU
   seconds (utime+stime from /proc/PID/stat over the measurement window) per 1000
   delivered messages;
2. route replication: on an idle cluster one client subscribes 10,000 distinct filters on
   one node (pipelined SUBSCRIBEs); time until every node's route table has them (polling
   `route_explain` of the last filter on every node over the ctl protocol, then one
   `routes verify`), time to the last SUBACK, RSS of every node before/after; and the time
   until every node has dropped them again after the client disconnects.
Then the largest cluster that fits: nodes started one by one until a time limit, a
30-s convergence failure or low memory; RSS per node idle and with 1,000 connections.

Results: bench/results/scaling.md (+ --json FILE). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as dt
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import run as brun  # noqa: E402  (bench/run.py: processes, loadgen, RSS, machine info)
from run import (LOADGEN, MQTTMESH_PY, _kill, _spawn, build_loadgen, clean_env,  # noqa: E402
                 kill_all, machine_info, median, raise_nofile, rss_bytes,
                 run_loadgen)
from tests.helpers.nodes import _free_on  # noqa: E402  (as bench/faults/common.py)
from tests.helpers.raw import _remaining_length, _utf8, connect_bytes  # noqa: E402

from mqttmesh.config.loader import load_settings  # noqa: E402
from mqttmesh.errors import ClusterError  # noqa: E402
from mqttmesh.mgmt.cluster import call as ctl_call  # noqa: E402

RESULTS = BENCH / "results"
EMPTY_CONF = "scaling-empty.conf"


# ----------------------------------------------------------------------------- nodes
@dataclass
class Node:
    """One mqttmesh node process, configured by environment variables only."""

    index: int                 # 1-based: host 127.0.0.<index>
    offset: int                # K: node name scale<K>@host, cluster ports 4370+K / 5370+K
    role: str                  # core | replicant
    seeds: list[str]
    cookie: str
    base: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    spawned_at: float = 0.0
    _settings: Any = None

    @property
    def host(self) -> str:
        return f"127.0.0.{self.index}"

    @property
    def name(self) -> str:
        return f"scale{self.offset}@{self.host}"

    @property
    def workdir(self) -> Path:
        return self.base / f"n{self.index}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def environment(self) -> dict[str, str]:
        env = {
            "MQTTMESH_NODE__NAME": self.name,
            "MQTTMESH_NODE__COOKIE": self.cookie,
            "MQTTMESH_NODE__DATA_DIR": str(self.workdir / "data"),
            "MQTTMESH_CLUSTER__NAME": "scaling",
            "MQTTMESH_CLUSTER__DISCOVERY_STRATEGY": "static",
            "MQTTMESH_CLUSTER__STATIC__SEEDS": "[" + ",".join(self.seeds) + "]",
            "MQTTMESH_LISTENERS__TCP__DEFAULT__BIND": f"{self.host}:{self.port}",
            "MQTTMESH_LISTENERS__SSL__DEFAULT__ENABLE": "false",
            "MQTTMESH_LISTENERS__WS__DEFAULT__ENABLE": "false",
            "MQTTMESH_LISTENERS__WSS__DEFAULT__ENABLE": "false",
            "MQTTMESH_DASHBOARD__LISTENERS__HTTP__ENABLE": "false",
            # as bench/run.py: a subscriber behind by > 1000 must not lose QoS 1 in a run
            "MQTTMESH_MQTT__MAX_MQUEUE_LEN": "1000000",
        }
        if self.role == "replicant":
            env["MQTTMESH_NODE__ROLE"] = "replicant"
        return env

    def spawn(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port_on(self.host)
        log = open(self.workdir / "node.log", "ab")
        self.spawned_at = time.monotonic()
        # cwd = workdir: no etc/mqttmesh.conf there, so the environment is the whole config
        self.proc = _spawn([str(MQTTMESH_PY), "-m", "mqttmesh", "foreground"],
                           env={**clean_env(), **self.environment(), "PYTHONUNBUFFERED": "1"},
                           cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
        log.close()

    def ready(self) -> bool:
        """The node wrote its pid file (after every listener is bound) and accepts TCP."""
        if not (self.workdir / "data" / "mqttmesh.pid").exists():
            return False
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 6) -> str:
        path = self.workdir / "node.log"
        if not path.exists():
            return ""
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])[-800:]

    def settings(self) -> Any:
        """The node's settings as `ctl` loads them (same environment, empty file)."""
        if self._settings is None:
            conf = self.workdir / EMPTY_CONF
            conf.write_text("")
            self._settings = load_settings(str(conf), env=self.environment())
        return self._settings

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc)
            self.proc = None


def free_port_on(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pick_offset(hosts: int) -> int:
    """K in 600..700 whose cluster ports are free on 127.0.0.1..<hosts> now."""
    ks = list(range(600, 701))
    secrets.SystemRandom().shuffle(ks)
    for k in ks:
        if all(_free_on(f"127.0.0.{i}", base + k) for i in range(1, hosts + 1)
               for base in (4370, 5370)):
            return k
    raise RuntimeError("no free cluster port offset in 600..700")


def wait_until(cond: Any, timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until cond() is true, or None at the deadline."""
    t0 = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(interval)


async def _call(node: Node, op: str, args: dict[str, Any] | None = None,
                timeout: float = 10.0) -> Any:
    try:
        return await ctl_call(node.settings(), op, args, timeout)
    except (ClusterError, OSError, asyncio.TimeoutError) as e:
        return {"error": str(e)[:300]}


async def _statuses(nodes: list[Node]) -> list[Any]:
    return list(await asyncio.gather(*(_call(n, "status", timeout=5.0) for n in nodes)))


def converged(nodes: list[Node], last: list[Any] | None = None) -> bool:
    """Every node lists every node in running_nodes (the `ctl cluster status` op)."""
    names = {n.name for n in nodes}
    st = asyncio.run(_statuses(nodes))
    if last is not None:
        last[:] = st
    return all(isinstance(s, dict) and names <= set(s.get("running_nodes", []))
               and not s.get("stopped_nodes") for s in st)


def ctl_status_cli(node: Node) -> dict[str, Any]:
    """`python -m mqttmesh ctl cluster status --json` exactly as a user runs it."""
    return brun.ctl_status_json(
        [str(MQTTMESH_PY), "-m", "mqttmesh", "ctl", "cluster", "status", "--json"],
        timeout=60, cwd=node.workdir, env={**clean_env(), **node.environment()})


class Cluster:
    def __init__(self, layout: str, base: Path, offset: int, cookie: str) -> None:
        self.layout, self.base, self.offset, self.cookie = layout, base, offset, cookie
        self.nodes: list[Node] = []

    def core_names(self, upto: int) -> list[str]:
        n_cores = upto if self.layout == "cores" else min(2, upto)
        return [f"scale{self.offset}@127.0.0.{i}" for i in range(1, n_cores + 1)]

    def make(self, index: int, seeds: list[str]) -> Node:
        role = "core" if self.layout == "cores" or index <= 2 else "replicant"
        node = Node(index, self.offset, role, seeds, self.cookie, self.base)
        self.nodes.append(node)
        return node

    def wait_ready(self, nodes: list[Node], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not node.ready():
                if not node.alive():
                    raise RuntimeError(f"{node.name} exited during start-up: {node.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} not ready after {timeout:.0f}s: "
                                       f"{node.log_tail()}")
                time.sleep(0.1)

    def start_all(self, n: int, timeout: float = 90.0) -> dict[str, Any]:
        """Start n nodes at once; wait until every node sees all running."""
        seeds = self.core_names(n)
        made = [self.make(i, seeds) for i in range(1, n + 1)]
        t0 = time.monotonic()
        for node in made:
            node.spawn()
        self.wait_ready(made, timeout)
        t_ready = time.monotonic() - t0
        last: list[Any] = []
        took = wait_until(lambda: converged(made, last), timeout, 0.2)
        if took is None:
            raise RuntimeError(f"{n} nodes did not converge within {timeout:.0f}s: "
                               f"{json.dumps(last)[:600]}; logs: "
                               f"{[n.log_tail(3) for n in made if not n.alive()]}")
        return {"ready_s": t_ready, "converged_s": time.monotonic() - t0,
                "ctl_status": ctl_status_cli(made[0])}

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []


def node_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(nodes: list[Node], window: float = 3.0) -> dict[str, float]:
    """Cores used by each node over `window` seconds with no clients (heartbeats, gossip)."""
    c0 = {n.name: node_cpu_s(n.pid) for n in nodes}
    t0 = time.monotonic()
    time.sleep(window)
    secs = time.monotonic() - t0
    return {n.name: (node_cpu_s(n.pid) - c0[n.name]) / secs for n in nodes}


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


# ----------------------------------------------------------------------------- throughput
def throughput(cl: Cluster, qos: int, run: int, st: argparse.Namespace) -> dict[str, Any]:
    nodes = cl.nodes
    n = len(nodes)
    topics = max(4, 2 * n)
    # wait (up to --quiet-wait s) for a 1-s window with < 0.5 cores busy: the machine is shared
    busy = brun.wait_quiet(brun.Settings(runs=1, warmup=0, duration=0, drain=0, settle=0,
                                         idle_conns=0, mqtt=4, quiet_wait=st.quiet_wait))
    args = ["--nodes", ",".join(f"{x.host}:{x.port}" for x in nodes),
            "--pubs", str(topics), "--subs", str(topics), "--topics", str(topics),
            "--qos", str(qos), "--size", "64", "--warmup", str(st.warmup),
            "--duration", str(st.duration), "--drain", "60",
            "--topic-prefix", f"scale/n{n}/r{run}/q{qos}/t",
            "--start-delay", "1",  # SUBACKs wait for the route barrier; keep a margin anyway
            "--broker-pid", ",".join(str(x.pid) for x in nodes)]
    res = run_loadgen(args, timeout=st.warmup + st.duration + 60 + 120)
    res["busy_before"] = busy
    dead = [x.name for x in nodes if not x.alive()]
    if dead:
        res["ok"] = False
        res["failure"] = f"node(s) exited: {dead}: {[x.log_tail(3) for x in nodes if not x.alive()]}"
    elif not res.get("ok") and "failure" not in res:
        bad = {k: v for k, v in res.get("errors", {}).items() if v}
        res["failure"] = (f"loadgen errors {bad} (sent {res.get('sent')}, expected "
                          f"{res.get('expected')}, received {res.get('received')})")
    each = res.get("broker_cpu_s_each") or []
    got = res.get("received_in_window") or 0
    if got and each and all(c >= 0 for c in each):
        res["cpu_s_per_1k_each"] = [c / got * 1000 for c in each]
        res["cpu_s_per_1k_total"] = sum(each) / got * 1000
    return res


# ----------------------------------------------------------------------------- routes
def _subscribe_packet(pid: int, topic_filter: str) -> bytes:
    body = pid.to_bytes(2, "big") + _utf8(topic_filter) + b"\x00"
    return b"\x82" + _remaining_length(len(body)) + body


async def _read_packets(reader: asyncio.StreamReader, want_type: int, count: int) -> None:
    """Read MQTT packets until `count` packets of `want_type` (high nibble) arrived."""
    seen = 0
    while seen < count:
        head = await reader.readexactly(1)
        mul, rl = 1, 0
        while True:
            b = (await reader.readexactly(1))[0]
            rl += (b & 127) * mul
            mul *= 128
            if not b & 128:
                break
        await reader.readexactly(rl)
        if head[0] >> 4 == want_type:
            seen += 1


async def _has_route(node: Node, topic: str, origin: str) -> bool:
    r = await _call(node, "route_explain", {"topic": topic}, timeout=5.0)
    return isinstance(r, dict) and any(f == topic and origin in ns
                                       for f, ns in r.get("filters", []))


async def _verify(node: Node) -> dict[str, Any]:
    r = await _call(node, "routes_verify", timeout=30.0)
    return r if isinstance(r, dict) else {"error": repr(r)[:200]}


async def route_replication(cl: Cluster, count: int, run: int) -> dict[str, Any]:
    nodes = cl.nodes
    origin = nodes[-1]                      # a core in the cores layout, a replicant else
    filters = [f"scale/rr{run}/{i:05d}/x" for i in range(count)]
    last = filters[-1]
    out: dict[str, Any] = {"origin": origin.name, "filters": count}
    base_verify = await _verify(nodes[0])
    out["routes_before"] = base_verify.get("routes")
    await asyncio.sleep(1.0)
    out["rss_before"] = {x.name: rss_bytes(x.pid) for x in nodes}
    reader, writer = await asyncio.wait_for(asyncio.open_connection(origin.host, origin.port), 10)
    writer.write(connect_bytes(f"scale-rr{run}-{secrets.token_hex(3)}"))
    await asyncio.wait_for(_read_packets(reader, 2, 1), 10)
    pkts = b"".join(_subscribe_packet(i % 65535 + 1, f) for i, f in enumerate(filters))
    t0 = time.monotonic()
    writer.write(pkts)
    t_suback: float | None = None

    async def all_subacks() -> None:
        nonlocal t_suback
        await asyncio.wait_for(_read_packets(reader, 9, count), 120)
        t_suback = time.monotonic() - t0

    subacks = asyncio.get_running_loop().create_task(all_subacks())
    seen: dict[str, float] = {}
    deadline = t0 + 120
    while len(seen) < len(nodes) and time.monotonic() < deadline:
        pending = [x for x in nodes if x.name not in seen]
        oks = await asyncio.gather(*(_has_route(x, last, origin.name) for x in pending))
        now = time.monotonic() - t0
        for x, ok in zip(pending, oks):
            if ok:
                seen[x.name] = now
        await asyncio.sleep(0.02)
    out["per_node_s"] = seen
    verified: float | None = None
    vres: dict[str, Any] = {}
    while time.monotonic() < deadline and len(seen) == len(nodes):
        vres = await _verify(nodes[0])
        if not vres.get("differences") and not vres.get("error") \
                and not vres.get("not_checked"):
            verified = time.monotonic() - t0
            break
        await asyncio.sleep(0.1)
    out["all_nodes_s"] = max(seen.values()) if len(seen) == len(nodes) else None
    out["verified_s"] = verified
    out["verify"] = {k: vres.get(k) for k in ("nodes", "routes", "differences", "not_checked",
                                              "error")}
    try:
        await subacks
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError) as e:
        out["suback_error"] = repr(e)[:200]
    out["last_suback_s"] = t_suback
    await asyncio.sleep(1.0)
    out["rss_after"] = {x.name: rss_bytes(x.pid) for x in nodes}
    # removal: DISCONNECT (clean session), then every node must have dropped them
    writer.write(b"\xe0\x00")
    t1 = time.monotonic()
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()
    removed: float | None = None
    while time.monotonic() - t1 < 120:
        r = await asyncio.gather(*(_has_route(x, last, origin.name) for x in nodes))
        if not any(r):
            v = await _verify(nodes[0])
            if not v.get("differences") and not v.get("error") \
                    and v.get("routes") == out["routes_before"]:
                removed = time.monotonic() - t1
                break
        await asyncio.sleep(0.05)
    out["removed_s"] = removed
    out["ok"] = out["verified_s"] is not None and removed is not None \
        and "suback_error" not in out
    return out


# ----------------------------------------------------------------------------- largest
def largest(layout: str, st: argparse.Namespace, base: Path) -> dict[str, Any]:
    limit = st.max_nodes or 100
    cl = Cluster(layout, base / f"largest-{layout}", pick_offset(limit), secrets.token_hex(16))
    out: dict[str, Any] = {"layout": layout, "limit_nodes": limit, "steps": []}
    t_start = time.monotonic()
    stop_reason = f"reached the configured maximum of {limit} nodes"
    try:
        for i in range(1, limit + 1):
            if time.monotonic() - t_start > st.largest_time:
                stop_reason = f"time limit ({st.largest_time:.0f} s) reached"
                break
            if mem_available() < 2 * 1024 ** 3:
                stop_reason = "less than 2 GiB of memory available"
                break
            seeds = cl.core_names(i)
            node = cl.make(i, seeds)
            node.spawn()
            try:
                cl.wait_ready([node], 60)
            except RuntimeError as e:
                stop_reason = f"node {i} did not start: {e}"
                cl.nodes.remove(node)
                node.stop()
                break
            t_ready = time.monotonic() - node.spawned_at
            last: list[Any] = []
            took = wait_until(lambda: converged(cl.nodes, last), 30.0, max(0.2, i / 100))
            step = {"nodes": i, "role": node.role, "ready_s": t_ready,
                    "converged_s": None if took is None else time.monotonic() - node.spawned_at,
                    "elapsed_s": time.monotonic() - t_start,
                    "mem_available_gib": mem_available() / 1024 ** 3}
            out["steps"].append(step)
            print(f"[largest {layout}] {i} nodes ({node.role}): ready {t_ready:.1f}s, converged "
                  f"{'NO' if took is None else format(step['converged_s'], '.1f') + 's'}", flush=True)
            if took is None:
                stop_reason = (f"the cluster did not converge within 30 s after node {i} "
                               f"started: {json.dumps(last)[:400]}")
                break
        ok_steps = [s for s in out["steps"] if s["converged_s"] is not None]
        out["stop_reason"] = stop_reason
        out["reached"] = ok_steps[-1]["nodes"] if ok_steps else 0
        out["last_converge_s"] = ok_steps[-1]["converged_s"] if ok_steps else None
        if cl.nodes and all(n.alive() for n in cl.nodes):
            time.sleep(2)
            out["rss_idle"] = {n.name: rss_bytes(n.pid) for n in cl.nodes}
            out["idle_cpu"] = idle_cpu(cl.nodes, 5.0)
            out["roles"] = {n.name: n.role for n in cl.nodes}
            out.update(rss_with_connections(cl, st.conns))
        return out
    finally:
        cl.stop()


def rss_with_connections(cl: Cluster, conns: int) -> dict[str, Any]:
    nodes = cl.nodes
    cmd = [str(LOADGEN), "--mode", "idle", "--nodes",
           ",".join(f"{x.host}:{x.port}" for x in nodes), "--conns", str(conns),
           "--connect-timeout", "120", "--hold", "600"]
    proc = _spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: dict[str, Any] = {"conns_cmd": shlex.join(cmd)}
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline().decode()
        ev = json.loads(first) if first.startswith("{") else {}
        out["conns_connected"] = ev.get("clients")
        out["conns_connect_s"] = ev.get("connect_s")
        time.sleep(2)
        out["rss_conns"] = {x.name: rss_bytes(x.pid) for x in nodes}
        proc.stdin.close()
        proc.wait(60)
    except (OSError, json.JSONDecodeError, subprocess.TimeoutExpired) as e:
        out["conns_error"] = repr(e)[:300]
    finally:
        _kill(proc, grace=2.0)
    return out


# ----------------------------------------------------------------------------- one size
def measure_size(layout: str, n: int, st: argparse.Namespace, base: Path) -> dict[str, Any]:
    cl = Cluster(layout, base / f"{layout}-{n}", pick_offset(n), secrets.token_hex(16))
    out: dict[str, Any] = {"layout": layout, "n": n, "throughput": {"0": [], "1": []},
                           "routes": []}
    try:
        try:
            out["formation"] = cl.start_all(n)
        except RuntimeError as e:
            out["failure"] = str(e)
            print(f"[{layout} N={n}] cluster did not form: {e}", flush=True)
            return out
        out["nodes"] = [{"name": x.name, "role": x.role, "pid": x.pid} for x in cl.nodes]
        out["rss_idle"] = {x.name: rss_bytes(x.pid) for x in cl.nodes}
        out["idle_cpu"] = idle_cpu(cl.nodes, 3.0)
        print(f"[{layout} N={n}] formed in {out['formation']['converged_s']:.1f}s", flush=True)
        for run in range(1, st.runs + 1):
            for qos in (0, 1):
                res = throughput(cl, qos, run, st)
                out["throughput"][str(qos)].append(res)
                cpu = res.get("cpu_s_per_1k_total")
                print(f"[{layout} N={n}] QoS {qos} run {run}: "
                      f"{'ok' if res.get('ok') else 'FAIL'} "
                      f"{res.get('sustained_out_per_s', 0):,.0f} msg/s, "
                      f"{'-' if cpu is None else f'{cpu * 1000:.1f}'} ms CPU/1000 msgs"
                      + ("" if res.get("ok") else f" [{str(res.get('failure'))[:300]}]"),
                      flush=True)
        for run in range(1, st.route_runs + 1):
            try:
                rr = asyncio.run(route_replication(cl, st.filters, run))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                rr = {"ok": False, "failure": repr(e)[:300]}
            out["routes"].append(rr)
            print(f"[{layout} N={n}] routes run {run}: all nodes {rr.get('all_nodes_s')}, "
                  f"verified {rr.get('verified_s')}, last SUBACK {rr.get('last_suback_s')}, "
                  f"removed {rr.get('removed_s')}", flush=True)
        return out
    finally:
        cl.stop()


# ----------------------------------------------------------------------------- report
def _med(vals: list[float | None]) -> float | None:
    return median([v for v in vals if v is not None])


def _f(v: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "—" if v is None else format(v, spec) + suffix


def _mb(b: float | None) -> str:
    return "—" if b is None else f"{b / 1024 / 1024:.1f}"


def layout_tables(layout: str, sizes: list[dict[str, Any]], filters: int) -> list[str]:
    L: list[str] = []
    L.append(f"### Throughput ({layout} layout)\n")
    L.append("Publishers of topic t on node t mod N, its subscriber on node (t+1) mod N "
             "(so for N >= 2 every message crosses nodes once); max(4, 2N) topics, one "
             "publisher and one subscriber each, 64 B. msg/s = sustained delivered rate "
             "(median over runs). CPU = all nodes' utime+stime in the measurement window per "
             "1000 messages delivered in that window (ms of CPU per 1000 msgs = µs per msg); "
             "cores = nodes' CPU / wall time.\n")
    L.append("| N | QoS | delivered msg/s | nodes' CPU ms / 1000 msgs (total) | per node, ms / 1000 msgs | nodes' cores busy | loadgen cores | other load (cores) | busy before (cores) | runs ok |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for s in sizes:
        if s.get("failure"):
            L.append(f"| {s['n']} | — | cluster did not form: {s['failure'][:200]} | | | | | | | |")
            continue
        for qos in ("0", "1"):
            runs = s["throughput"][qos]
            ok = [r for r in runs if r.get("ok")]
            rate = _med([r.get("sustained_out_per_s") for r in ok])
            tot = _med([r.get("cpu_s_per_1k_total") for r in ok])
            each: list[str] = []
            if ok and ok[0].get("cpu_s_per_1k_each"):
                for i in range(len(ok[0]["cpu_s_per_1k_each"])):
                    each.append(_f(_med([r["cpu_s_per_1k_each"][i] * 1000 for r in ok
                                         if r.get("cpu_s_per_1k_each")]), ".1f"))
            bc = _med([r.get("broker_cpu_share") for r in ok])
            lc = _med([r.get("loadgen_cpu_share") for r in ok])
            other = _med([max(r["machine_busy_cores"] - r["broker_cpu_share"]
                              - r["loadgen_cpu_share"], 0.0) for r in ok
                          if r.get("machine_busy_cores", -1) >= 0])
            before = _med([r.get("busy_before") for r in ok])
            fails = "; ".join(str(r.get("failure", "?"))[:150] for r in runs if not r.get("ok"))
            L.append(f"| {s['n']} | {qos} | {_f(rate)} | {_f(None if tot is None else tot * 1000, '.1f')} "
                     f"| {' / '.join(each) or '—'} | {_f(bc, '.2f')} | {_f(lc, '.2f')} | "
                     f"{_f(other, '.2f')} | {_f(before, '.2f')} | {len(ok)}/{len(runs)}"
                     + (f" ({fails.replace('|', '/')})" if fails else "") + " |")
    L.append("")
    L.append(f"### Route replication ({layout} layout)\n")
    L.append(f"Idle cluster; one client on the last node sends {filters:,} SUBSCRIBEs (one "
             "distinct filter each, pipelined). *All nodes*: until `route_explain` of the last filter "
             "names the origin on every node (replicas apply the origin's log in order, so the "
             "last filter means all of them); *verified*: `routes verify` then shows no "
             "difference; *last SUBACK*: SUBACKs wait for the route barrier (every running "
             "member acknowledged); *removed*: after DISCONNECT, until every node dropped "
             "them. Medians over runs. RSS delta = (after - before) / filters, per node, from the "
             "first run (later runs reuse the memory the removal freed).\n")
    L.append("| N | all nodes have them, s | verified, s | last SUBACK, s | removed everywhere, s | RSS delta on the subscribing node, B/filter | RSS delta on other nodes (median), B/filter | runs ok |")
    L.append("|---|---|---|---|---|---|---|---|")
    for s in sizes:
        if s.get("failure"):
            continue
        rr = s["routes"]
        ok = [r for r in rr if r.get("ok")]
        origin_d, other_d = [], []
        for r in ok[:1]:   # the first fill: later runs reuse memory freed by the removal
            for name, after in r["rss_after"].items():
                d = (after - r["rss_before"][name]) / r["filters"]
                (origin_d if name == r["origin"] else other_d).append(d)
        fails = "; ".join(str(r.get("failure") or r.get("suback_error") or "timeout")[:120]
                          for r in rr if not r.get("ok"))
        L.append(f"| {s['n']} | {_f(_med([r.get('all_nodes_s') for r in ok]), '.2f')} | "
                 f"{_f(_med([r.get('verified_s') for r in ok]), '.2f')} | "
                 f"{_f(_med([r.get('last_suback_s') for r in ok]), '.2f')} | "
                 f"{_f(_med([r.get('removed_s') for r in ok]), '.2f')} | "
                 f"{_f(_med(origin_d), ',.0f')} | {_f(_med(other_d), ',.0f')} | "
                 f"{len(ok)}/{len(rr)}" + (f" ({fails})" if fails else "") + " |")
    L.append("")
    for s in sizes:
        rows = ((s.get("formation") or {}).get("ctl_status") or {}).get("nodes") or []
        attached = [f"{r['name'].split('@')[1]} -> {str(r.get('core')).split('@')[-1]}"
                    for r in rows if isinstance(r, dict) and r.get("role") == "replicant"]
        if attached:
            L.append(f"N={s['n']}: replicants attached to cores (`ctl cluster status --json`): "
                     + ", ".join(attached) + "\n")
    L.append(f"Idle nodes after formation ({layout}), RSS and CPU per node (heartbeats, "
             "gossip, anti-entropy; 3 s with no clients), medians: " + "; ".join(
                 f"N={s['n']}: {_mb(_med(list(s['rss_idle'].values())))} MB, "
                 f"{_f(_med(list(s.get('idle_cpu', {}).values())), '.3f')} cores"
                 for s in sizes if s.get("rss_idle")) + "\n")
    return L


def largest_table(lg: dict[str, Any]) -> list[str]:
    L = [f"### Largest cluster ({lg['layout']} layout)\n"]
    L.append(f"Nodes started one by one (static seeds = the cores started so far); after each "
             f"start wait up to 30 s until every node lists every node as running. Stopped: "
             f"{lg.get('stop_reason')}.\n")
    L.append(f"- Reached: **{lg.get('reached')} nodes**; the last node converged "
             f"{_f(lg.get('last_converge_s'), '.1f', ' s')} after it was spawned "
             "(process start + join + status on every node).")
    idle, conns = lg.get("rss_idle") or {}, lg.get("rss_conns") or {}
    if idle:
        roles = lg.get("roles", {})
        for role in sorted(set(roles.values())):
            names = [n for n in idle if roles.get(n) == role]
            iv = [idle[n] for n in names]
            cpu = [lg.get("idle_cpu", {}).get(n) for n in names]
            L.append(f"- Idle CPU per {role} node (5 s, no clients): median "
                     f"{_f(_med(cpu), '.3f')} cores, {role}s together "
                     f"{_f(sum(c for c in cpu if c is not None), '.2f')}.")
            L.append(f"- RSS per {role} node, idle: median {_mb(_med(iv))} MB "
                     f"(min {_mb(min(iv))}, max {_mb(max(iv))}).")
            if conns:
                cv = [conns[n] - idle[n] for n in names if n in conns]
                L.append(f"  With {lg.get('conns_connected')} connections spread over all "
                         f"nodes: median {_mb(_med([conns[n] for n in names if n in conns]))} "
                         f"MB, +{_mb(_med(cv))} MB per node.")
    if idle:
        L.append(f"- All {len(idle)} nodes together: RSS {_mb(sum(idle.values()))} MB idle, "
                 f"{_mb(sum(conns.values())) if conns else '—'} MB with the connections; idle "
                 f"CPU {_f(sum(lg.get('idle_cpu', {}).values()), '.2f')} cores.")
    if lg.get("conns_error"):
        L.append(f"- connections: {lg['conns_error']}")
    L.append("")
    L.append("| nodes | role of the new node | new node ready, s | cluster converged, s after spawn | elapsed, s | MemAvailable, GiB |")
    L.append("|---|---|---|---|---|---|")
    for s in lg.get("steps", []):
        L.append(f"| {s['nodes']} | {s['role']} | {s['ready_s']:.1f} | "
                 f"{_f(s['converged_s'], '.1f')} | {s['elapsed_s']:.0f} | "
                 f"{s['mem_available_gib']:.1f} |")
    L.append("")
    return L


def write_report(path: Path, data: dict[str, Any]) -> str:
    m = data["machine"]
    L = ["# mqttmesh cluster scaling\n"]
    L.append(f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, {m['os']}, kernel "
             f"{m['kernel']}; Python {m['python']}; {m['gcc']}. Shared with other agents' "
             "test runs (see 'other load' and 'busy before').")
    L.append("- Nodes are separate processes configured by environment only; see "
             "bench/README.md, 'Cluster scaling'.")
    L.append("")
    for layout, block in data["layouts"].items():
        L.append(f"## Layout: {layout}\n")
        L.append(f"- Command: `{block['command']}`")
        L.append(f"- Date: {block['date']} (took {block['elapsed_s'] / 60:.1f} min); mqttmesh "
                 f"{block['version']}")
        L.append(f"- Settings: {block['runs']} run(s) per throughput figure (medians), warm-up "
                 f"{block['warmup']:g} s, measure {block['duration']:g} s, before each run "
                 f"waited up to {block.get('quiet_wait', 0):g} s for < 0.5 cores busy; "
                 f"{block['filters']:,} filters x {block['route_runs']} run(s) for route "
                 "replication.\n")
        if block.get("note"):
            L.append(block["note"] + "\n")
        L += layout_tables(layout, block.get("sizes", []), block.get("filters", 10000))
        if block.get("largest"):
            L += largest_table(block["largest"])
    if data.get("reading"):
        L.append("## Reading\n")
        L.append(data["reading"] + "\n")
    text = "\n".join(L) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


# ----------------------------------------------------------------------------- main
def _on_signal(signum: int, _frame: Any) -> None:
    kill_all()
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layout", choices=("cores", "replicants"), default="cores")
    ap.add_argument("--sizes", help="cluster sizes, comma list (default 1,2,4,8; --quick 1,2,4)")
    ap.add_argument("--quick", action="store_true", help="N = 1,2,4, 1 run, short windows")
    ap.add_argument("--runs", type=int, help="throughput runs per size and QoS (default 3)")
    ap.add_argument("--duration", type=float, help="measurement seconds (default 5, quick 2)")
    ap.add_argument("--filters", type=int, default=10000, help="filters for route replication")
    ap.add_argument("--route-runs", type=int, help="route replication runs (default 3, quick 1)")
    ap.add_argument("--no-largest", action="store_true", help="skip the largest-cluster part")
    ap.add_argument("--largest-only", action="store_true", help="only the largest-cluster part")
    ap.add_argument("--max-nodes", type=int, help="largest cluster: stop at this many nodes "
                    "(default 100, on 127.0.0.1..100)")
    ap.add_argument("--largest-time", type=float, default=180.0,
                    help="largest cluster: stop adding nodes after this many seconds")
    ap.add_argument("--conns", type=int, default=1000,
                    help="connections spread over the largest cluster for its RSS")
    ap.add_argument("--quiet-wait", type=float, default=None,
                    help="before each throughput run wait up to S s for a 1-s window with "
                         "< 0.5 cores busy (default 10, --quick 0)")
    ap.add_argument("--output", default=str(RESULTS / "scaling.md"))
    ap.add_argument("--merge", action="store_true",
                    help="keep the other layout's section of --json/--output from an earlier "
                         "run (needs --json)")
    ap.add_argument("--json", help="also write raw results to this file")
    ap.add_argument("--reading", help="a paragraph of interpretation to put in the report")
    ap.add_argument("--render-only", action="store_true",
                    help="run nothing: rewrite --output from the --json file (e.g. with "
                         "--reading)")
    st = ap.parse_args(argv)
    st.runs = st.runs or (1 if st.quick else 3)
    st.route_runs = st.route_runs or (1 if st.quick else 3)
    st.duration = st.duration or (2.0 if st.quick else 5.0)
    st.warmup = 0.5 if st.quick else 1.0
    if st.quiet_wait is None:
        st.quiet_wait = 0.0 if st.quick else 10.0
    sizes = [int(x) for x in (st.sizes or ("1,2,4" if st.quick else "1,2,4,8")).split(",") if x]

    if st.render_only:
        if not st.json:
            ap.error("--render-only needs --json FILE")
        data = json.loads(Path(st.json).read_text())
        if st.reading:
            data["reading"] = st.reading
            Path(st.json).write_text(json.dumps(data, indent=1, default=str))
        write_report(Path(st.output), data)
        print(f"written to {st.output}")
        return 0
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(kill_all)
    raise_nofile(65536)
    given = sys.argv[1:] if argv is None else argv
    command = ".venv/bin/python bench/scaling.py" + (" " + shlex.join(given) if given else "")
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="scaling-"))
    try:
        build_loadgen()
        block: dict[str, Any] = {"sizes": []}
        if st.layout == "replicants":
            block["note"] = ("2 cores (127.0.0.1, 127.0.0.2) + N-2 replicants "
                             "(`MQTTMESH_NODE__ROLE=replicant`, static seeds = the 2 cores); "
                             "sizes below 3 have no replicant and are the cores layout's.")
        if not st.largest_only:
            for n in sizes:
                if st.layout == "replicants" and n < 3:
                    continue
                block["sizes"].append(measure_size(st.layout, n, st, base))
        if not st.no_largest:
            block["largest"] = largest(st.layout, st, base)
        block.update({
            "command": command, "date": started.strftime("%Y-%m-%d %H:%M UTC"),
            "version": brun.Mqttmesh().version(), "elapsed_s": time.monotonic() - t0,
            "runs": st.runs, "route_runs": st.route_runs, "warmup": st.warmup,
            "duration": st.duration, "filters": st.filters, "quiet_wait": st.quiet_wait})
        data: dict[str, Any] = {"machine": machine_info(), "layouts": {}, "reading": st.reading}
        if st.merge and st.json and Path(st.json).exists():
            old = json.loads(Path(st.json).read_text())
            data["layouts"] = {k: v for k, v in old.get("layouts", {}).items() if k != st.layout}
            data["reading"] = st.reading or old.get("reading")
        data["layouts"][st.layout] = block
        if st.json:
            Path(st.json).parent.mkdir(parents=True, exist_ok=True)
            Path(st.json).write_text(json.dumps(data, indent=1, default=str))
        text = write_report(Path(st.output), data)
        print(text)
        print(f"written to {st.output}")
        return 0
    finally:
        kill_all()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
