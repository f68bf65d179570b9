#!/usr/bin/env python3
"""Check the cost model of docs/scaling.md against running clusters.

For each layout C cores + R replicants (node processes on 127.0.0.1..N, static discovery,
replicants started together so they spread by load), it measures and sets beside the model:

* **links**: established TCP connections on the cluster ports (from /proc/net/tcp), model
  ``2·C·(C−1) + 2·R``;
* **idle traffic**: wire messages per second each node sends with no clients (heartbeats,
  gossip, anti-entropy), from ``ctl cluster stats`` counters over a window, model in
  docs/scaling.md ("Idle traffic");
* **route fan-out**: F filters subscribed on one replicant (or a core if R = 0); every node
  should receive each change once, and each node should send as many copies as the model
  says (the origin: 1 if a replicant; its core: C−1 + its other replicants; the other cores:
  their replicants). Measured as bytes sent by the node / bytes received by the median node
  during the change, minus the idle rate;
* **memory**: RSS per node by role, idle and per route held (non-origin nodes).

    .venv/bin/python bench/topology_cost.py                       # layouts 3:0, 2:4, 2:10
    .venv/bin/python bench/topology_cost.py --layouts 2:6 --filters 5000

Writes bench/results/topology_cost.md (and --json). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime as dt
import json
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import scaling  # noqa: E402  (bench/scaling.py: Node processes, convergence, route load)
from run import machine_info, rss_bytes  # noqa: E402

RESULTS = BENCH / "results"
_NODES: list[scaling.Node] = []


def kill_all() -> None:
    for node in _NODES:
        node.stop()


atexit.register(kill_all)


# -- cluster -----------------------------------------------------------------------------------
def start(cores: int, replicants: int, base: Path) -> tuple[list[scaling.Node], int]:
    n = cores + replicants
    offset = scaling.pick_offset(n)
    cookie = secrets.token_hex(8)
    seeds = [f"scale{offset}@127.0.0.{i}" for i in range(1, cores + 1)]
    nodes = [scaling.Node(i, offset, "core" if i <= cores else "replicant", seeds, cookie,
                          base) for i in range(1, n + 1)]
    _NODES.extend(nodes)
    for group in (nodes[:cores], nodes[cores:]):
        for node in group:
            node.spawn()
        for node in group:
            if scaling.wait_until(node.ready, 60) is None:
                raise RuntimeError(f"{node.name} not ready: {node.log_tail()}")
    if scaling.wait_until(lambda: scaling.converged(nodes), 60, 0.2) is None:
        raise RuntimeError(f"{cores}+{replicants} did not converge")
    return nodes, offset


def stats(nodes: list[scaling.Node]) -> list[dict[str, Any]]:
    async def all_() -> list[Any]:
        return list(await asyncio.gather(*(scaling._call(x, "cluster_stats") for x in nodes)))
    return asyncio.run(all_())


def topology(node: scaling.Node) -> dict[str, str]:
    st = asyncio.run(scaling._call(node, "status"))
    return {r["name"]: r["core"] for r in st.get("nodes", []) if r["role"] == "replicant"}


def links(offset: int, nodes: list[scaling.Node]) -> int:
    """Established TCP connections with a cluster port (4370+K / 5370+K) at either end."""
    ports = {4370 + offset, 5370 + offset}
    hosts = {x.host for x in nodes}
    seen = set()

    def decode(field: str) -> tuple[str, int]:
        addr, port = field.split(":")
        return socket.inet_ntoa(struct.pack("<I", int(addr, 16))), int(port, 16)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[3] != "01":
                continue
            a, b = decode(parts[1]), decode(parts[2])
            if a[0] in hosts and b[0] in hosts and (a[1] in ports or b[1] in ports):
                seen.add(tuple(sorted((a, b))))
    return len(seen)


# -- model (docs/scaling.md) -------------------------------------------------------------------
def model_idle_msgs(role: str, c: int, n: int, own_replicants: int) -> float:
    """Wire messages per second a node sends when idle."""
    if role == "replicant":
        return 2 + 0.5  # a heartbeat on each of its 2 links; its digest every 2 s
    link_ends = 4 * (c - 1) + 2 * own_replicants
    to_cores = (c - 1) * (3 + own_replicants)     # view, digest, topology + its replicants'
    to_replicants = own_replicants * (n + 2)      # view, every digest, topology
    return link_ends + (to_cores + to_replicants) / 2


def model_copies(node: scaling.Node, origin: scaling.Node, cores: int,
                 attach: dict[str, str]) -> int:
    """Copies of each route change ``node`` sends when ``origin`` changes its routes."""
    mine = sum(1 for c in attach.values() if c == node.name)
    if node.role == "replicant":
        return 1 if node is origin else 0
    if node is origin:
        return (cores - 1) + mine
    if attach.get(origin.name) == node.name:  # the origin's core
        return (cores - 1) + mine - 1
    return mine


# -- one layout --------------------------------------------------------------------------------
def measure(cores: int, replicants: int, filters: int, window: float) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix=f"topocost-{cores}-{replicants}-"))
    nodes, offset = start(cores, replicants, base)
    n = len(nodes)
    out: dict[str, Any] = {"cores": cores, "replicants": replicants}
    try:
        time.sleep(3.0)  # let the formation's snapshots settle (a measurement, not a sync)
        attach = topology(nodes[0])
        out["attach"] = attach
        out["links"] = links(offset, nodes)
        out["links_model"] = 2 * cores * (cores - 1) + 2 * replicants
        # idle traffic
        s0, t0 = stats(nodes), time.monotonic()
        time.sleep(window)
        s1, t1 = stats(nodes), time.monotonic()
        rows = []
        for x, a, b in zip(nodes, s0, s1):
            mine = sum(1 for c in attach.values() if c == x.name)
            rows.append({"node": x.name, "role": x.role, "replicants": mine,
                         "msgs_out_s": (b["link_messages_out"] - a["link_messages_out"])
                         / (t1 - t0),
                         "bytes_out_s": (b["link_bytes_out"] - a["link_bytes_out"]) / (t1 - t0),
                         "model_msgs_out_s": model_idle_msgs(x.role, cores, n, mine),
                         "rss_idle": rss_bytes(x.pid)})
        out["idle"] = rows
        # route fan-out
        origin = nodes[-1]
        s2, t2 = stats(nodes), time.monotonic()
        rr = asyncio.run(scaling.route_replication(scaling_cluster(nodes), filters, 0))
        s3, t3 = stats(nodes), time.monotonic()
        out["route_replication"] = {k: rr.get(k) for k in ("all_nodes_s", "verified_s",
                                                           "last_suback_s", "removed_s", "ok")}
        dt_ = t3 - t2
        idle_rate = {r["node"]: r["bytes_out_s"] for r in rows}
        received = []
        fan = []
        for x, a, b, r in zip(nodes, s2, s3, rows):
            b_in = b["link_bytes_in"] - a["link_bytes_in"] - idle_rate[x.name] * dt_
            b_out = b["link_bytes_out"] - a["link_bytes_out"] - idle_rate[x.name] * dt_
            if x is not origin:
                received.append(b_in)
            fan.append({"node": x.name, "role": x.role, "bytes_in": b_in, "bytes_out": b_out,
                        "model_copies": model_copies(x, origin, cores, attach),
                        "rss_before": rr["rss_before"][x.name],
                        "rss_after": rr["rss_after"][x.name]})
        copy = statistics.median(received) if received else 0
        for row in fan:
            row["copies"] = row["bytes_out"] / copy if copy else None
        out["fanout"] = {"origin": origin.name, "origin_role": origin.role,
                         "filters": filters, "median_bytes_in": copy, "rows": fan}
    finally:
        for x in nodes:
            x.stop()
            _NODES.remove(x)
    return out


def scaling_cluster(nodes: list[scaling.Node]) -> Any:
    cl = scaling.Cluster("cores", nodes[0].base, nodes[0].offset, nodes[0].cookie)
    cl.nodes = nodes
    return cl


# -- report ------------------------------------------------------------------------------------
def report(results: list[dict[str, Any]], command: str, path: Path) -> str:
    m = machine_info()
    L = ["# Cost model check (docs/scaling.md)", "",
         f"- Command: `{command}`",
         f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; git "
         f"{_git()}; {m.get('cpus', '?')} CPUs; Python {m.get('python', '?')}",
         "- Nodes are processes on 127.0.0.x (bench/scaling.py `Node`), replicants started "
         "together after the cores converged.", ""]
    L += ["## Links", "", "| layout | TCP connections measured | model 2·C·(C−1) + 2·R |",
          "|---|---|---|"]
    for r in results:
        L.append(f"| {r['cores']}+{r['replicants']} | {r['links']} | {r['links_model']} |")
    L += ["", "## Idle traffic (messages sent per second per node, no clients)", "",
          "| layout | role (replicants served) | measured msg/s (median) | model msg/s | "
          "bytes/s (median) | RSS idle MB (median) |", "|---|---|---|---|---|---|"]
    for r in results:
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in r["idle"]:
            groups.setdefault((row["role"], row["replicants"]), []).append(row)
        for (role, mine), rows in sorted(groups.items()):
            L.append(f"| {r['cores']}+{r['replicants']} | {role} ({mine}) × {len(rows)} | "
                     f"{statistics.median(x['msgs_out_s'] for x in rows):.1f} | "
                     f"{rows[0]['model_msgs_out_s']:.1f} | "
                     f"{statistics.median(x['bytes_out_s'] for x in rows):,.0f} | "
                     f"{statistics.median(x['rss_idle'] for x in rows) / 2**20:.1f} |")
    L += ["", "## Route fan-out: copies of each route change a node sends", "",
          "F filters subscribed on the origin; a *copy* is what the median other node "
          "received (bytes, idle rate subtracted). Acks and relayed acks are in the "
          "measured bytes, not in the model, so measured copies run a little high.", "",
          "| layout | origin | node role | copies measured | model | RSS per route held, B |",
          "|---|---|---|---|---|---|"]
    for r in results:
        f = r["fanout"]
        for row in f["rows"]:
            held = (row["rss_after"] - row["rss_before"]) / f["filters"] \
                if row["node"] != f["origin"] else None
            copies = "—" if row["copies"] is None else f"{row['copies']:.2f}"
            L.append(f"| {r['cores']}+{r['replicants']} | {f['origin_role']} | "
                     f"{row['role']}{' (origin)' if row['node'] == f['origin'] else ''} | "
                     f"{copies} | {row['model_copies']} | "
                     f"{'—' if held is None else f'{held:,.0f}'} |")
        rr = r["route_replication"]
        L.append(f"| | {f['filters']:,} filters: on every node after "
                 f"{_s(rr.get('all_nodes_s'))} s, last SUBACK {_s(rr.get('last_suback_s'))} s, "
                 f"removed everywhere {_s(rr.get('removed_s'))} s | | | | |")
    text = "\n".join(L) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _git() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       cwd=BENCH.parent)
    return r.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layouts", default="3:0,2:4,2:10",
                    help="CORES:REPLICANTS, comma separated (default 3:0,2:4,2:10)")
    ap.add_argument("--filters", type=int, default=3000)
    ap.add_argument("--window", type=float, default=10.0, help="idle measurement, s")
    ap.add_argument("--output", default=str(RESULTS / "topology_cost.md"))
    ap.add_argument("--json")
    st = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: (kill_all(), sys.exit(128 + s)))
    results = []
    for spec in st.layouts.split(","):
        c, r = (int(x) for x in spec.split(":"))
        print(f"layout {c} cores + {r} replicants ...", flush=True)
        results.append(measure(c, r, st.filters, st.window))
    command = "python bench/topology_cost.py " + " ".join(argv or sys.argv[1:])
    print(report(results, command.strip(), Path(st.output)))
    if st.json:
        Path(st.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
