"""kill -9 run (long; not in the test suite).

Three nodes on 127.0.<net>.1..3; every cycle: six QoS 1 streams (every ordered pair of
nodes; persistent subscribers) run for KILL_EVERY seconds, a random node is killed -9,
restarted RESTART_AFTER seconds later, the cluster must converge again (same members,
``routes verify`` clean), then every stream is checked. Streams with neither end on the
killed node must lose 0 acknowledged messages (SPEC §5); streams touching it are reported
apart (its clients die with it: no guarantee).

    .venv/bin/python bench/faults/kill9.py --cycles 10
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from common import Stream, start_cluster, wait_converged


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--kill-every", type=float, default=30.0)
    ap.add_argument("--restart-after", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=100.0 / 6, help="msg/s per stream")
    ap.add_argument("--net", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill9-"))
    nodes = start_cluster(work, args.net)
    started = time.monotonic()
    safe = {"acked": 0, "lost": 0, "received": 0, "dups": 0, "unacked": 0}
    hit = {"acked": 0, "lost": 0}
    rejoin: list[float | None] = []
    try:
        for cycle in range(args.cycles):
            streams = [Stream(nodes, a, b, args.rate)
                       for a in range(3) for b in range(3) if a != b]
            time.sleep(args.kill_every - args.restart_after)
            victim = rng.randrange(3)
            nodes[victim].kill()
            print(f"[{time.monotonic() - started:6.0f}s] cycle {cycle + 1}: kill -9 "
                  f"{nodes[victim].name}", flush=True)
            time.sleep(args.restart_after)
            nodes[victim].start()
            took = wait_converged(nodes, 30.0)
            rejoin.append(took)
            print(f"    restarted; converged in "
                  f"{'%.1f s' % took if took is not None else 'NOT within 30 s'}", flush=True)
            for s in sorted(streams, key=lambda s: victim in (s.a, s.b)):
                touching = victim in (s.a, s.b)
                t = s.finish(3.0 if touching else 30.0)
                if touching:
                    hit["acked"] += t.acked
                    hit["lost"] += sum(t.lost)
                else:
                    safe["acked"] += t.acked
                    safe["lost"] += sum(t.lost)
                    safe["received"] += t.received
                    safe["dups"] += t.duplicates
                    safe["unacked"] += t.unacked
            print(f"    so far: surviving-node streams acked {safe['acked']} "
                  f"lost {safe['lost']} dups {safe['dups']}", flush=True)
    finally:
        for n in nodes:
            n.stop(timeout=5)
    conv = [t for t in rejoin if t is not None]
    print("\n== kill9 ==")
    print(f"duration {time.monotonic() - started:.0f} s, {len(rejoin)} kills, "
          f"6 streams x {args.rate:.1f} msg/s QoS 1 ({6 * args.rate:.0f} msg/s)")
    print(f"streams between surviving nodes: acknowledged {safe['acked']}, lost "
          f"{safe['lost']}, duplicates {safe['dups']} "
          f"({100.0 * safe['dups'] / max(safe['received'], 1):.2f} %)")
    print(f"streams touching the killed node (no guarantee): acknowledged {hit['acked']}, "
          f"missing {hit['lost']}")
    if conv:
        print(f"converged after restart: max {max(conv):.1f} s, mean "
              f"{sum(conv) / len(conv):.1f} s; failed {len(rejoin) - len(conv)}")
    return 0 if safe["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
