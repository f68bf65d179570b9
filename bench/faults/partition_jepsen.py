"""Jepsen-style partition run (long; not in the test suite). Needs root and iptables.

Three nodes on 127.0.<net>.1..3 (``cluster.autoclean`` short, so long splits also make both
sides remove each other and autoheal must undo it). Six QoS 1 streams (every ordered pair of
nodes: publisher on one, persistent subscriber on the other) run throughout. Cycles: HEALTHY
seconds healthy, then a partition of 10..30 s, shape chosen in turn from:
isolate n3 | isolate n1 | isolate n2 | bridge (n1 x n3 cut, n2 sees both) | isolate n2 again.
After every heal: seconds until every node shows the same members and
``ctl cluster routes verify`` reports no difference (deadline 30 s). At the end: acknowledged
messages lost, split in two: messages of a stream whose two nodes were on the same side
all along (acknowledged outside any window where its publisher's and subscriber's nodes
were cut from each other, from 1 s before the cut to 2 s after convergence): must be 0;
messages acknowledged while the two nodes were cut apart: reported (the subscriber's node
was unreachable from the publisher's: a down node's routes are not used, as in EMQX).
Duplicates and their share.

    .venv/bin/python bench/faults/partition_jepsen.py --cycles 8
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from common import Stream, start_cluster, wait_converged

from mqttmesh.config import dist_port, rpc_port
from tests.helpers.partition import Partitioner, available

SHAPES = ["isolate n3", "isolate n1", "isolate n2", "bridge n1|n3", "isolate n2"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=6)
    ap.add_argument("--healthy", type=float, default=20.0)
    ap.add_argument("--min-cut", type=float, default=10.0)
    ap.add_argument("--max-cut", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=15.0, help="msg/s per stream (6 streams)")
    ap.add_argument("--autoclean", default="15s")
    ap.add_argument("--net", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if not available():
        raise SystemExit("needs root and iptables")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="jepsen-"))
    nodes = start_cluster(work, args.net, f"cluster.autoclean = {args.autoclean}\n")
    part = Partitioner(sorted({f(n.name) for n in nodes for f in (dist_port, rpc_port)}))
    hosts = [n.host for n in nodes]
    heals: list[tuple[str, float, float | None]] = []
    windows: list[tuple[set[frozenset[int]], float, float]] = []
    streams = [Stream(nodes, a, b, args.rate) for a in range(3) for b in range(3) if a != b]
    started = time.monotonic()
    try:
        for cycle in range(args.cycles):
            time.sleep(args.healthy)
            shape = SHAPES[cycle % len(SHAPES)]
            cut = rng.uniform(args.min_cut, args.max_cut)
            t_cut = time.monotonic()
            if shape.startswith("isolate"):
                i = int(shape[-1]) - 1
                part.isolate(hosts[i], hosts)
                apart = {frozenset((i, j)) for j in range(3) if j != i}
            else:
                part.cut(hosts[0], hosts[2])
                apart = {frozenset((0, 2))}
            print(f"[{time.monotonic() - started:6.0f}s] cycle {cycle + 1}: {shape} "
                  f"for {cut:.0f} s", flush=True)
            time.sleep(cut)
            part.heal()
            t_heal = time.monotonic()
            took = wait_converged(nodes, 30.0)
            heals.append((shape, cut, took))
            windows.append((apart, t_cut - 1.0, t_heal + (took or 30.0) + 2.0))
            print(f"    healed: converged in "
                  f"{'%.1f s' % took if took is not None else 'NOT within 30 s'}", flush=True)
        tallies = [s.finish(20.0 if k == 0 else 3.0) for k, s in enumerate(streams)]
        safe_lost = cut_lost = cut_acked = 0
        for s in streams:
            pair = frozenset((s.a, s.b))
            t = s.traffic

            def in_cut(seq: int) -> bool:
                at = t.acked_at[seq]
                return any(pair in apart and lo <= at <= hi for apart, lo, hi in windows)

            cut_acked += sum(1 for n in t.acked if in_cut(n))
            for miss in t.missing():
                cut_lost += sum(1 for n in miss if in_cut(n))
                safe_lost += sum(1 for n in miss if not in_cut(n))
    finally:
        part.close()
        for n in nodes:
            n.stop(timeout=5)
    acked = sum(t.acked for t in tallies)
    lost = sum(sum(t.lost) for t in tallies)
    received = sum(t.received for t in tallies)
    dups = sum(t.duplicates for t in tallies)
    unacked = sum(t.unacked for t in tallies)
    conv = [h[2] for h in heals if h[2] is not None]
    print("\n== partition_jepsen ==")
    print(f"duration {time.monotonic() - started:.0f} s, {len(heals)} partitions, "
          f"6 streams x {args.rate:g} msg/s QoS 1, autoclean {args.autoclean}")
    for shape, cut, took in heals:
        print(f"  {shape:14s} cut {cut:4.0f} s  converged "
              f"{'%.1f s' % took if took is not None else '> 30 s'}")
    print(f"acknowledged {acked}, not acknowledged {unacked}, missing {lost} in all: "
          f"lost while publisher and subscriber nodes were connected: {safe_lost}; "
          f"missing of {cut_acked} acknowledged while they were cut apart: {cut_lost}")
    print(f"duplicates {dups} ({100.0 * dups / max(received, 1):.2f} % of received)")
    if conv:
        print(f"convergence after heal: max {max(conv):.1f} s, mean "
              f"{sum(conv) / len(conv):.1f} s; failed {len(heals) - len(conv)}")
    return 0 if safe_lost == 0 and len(conv) == len(heals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
