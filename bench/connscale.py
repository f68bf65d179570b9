#!/usr/bin/env python3
"""Connection scale on one node: mqttmesh vs Mosquitto in the same run.

Run from the repository root:  .venv/bin/python bench/connscale.py [--quick] [--conns N]

Per broker and run, on a freshly started broker: (a) open N MQTT 3.1.1 connections (clean
session, keepalive 300 s) as fast as possible with a bounded number of handshakes in flight
and time the ramp (whole ramp and the first 10,000); (b) read the broker's RSS before and
while holding the N idle connections; (c) after a hold period send PINGREQ on every
connection and count the PINGRESPs.  The client is bench/connscale.c (built with gcc into
bench/build/).  Brokers alternate within each run; the report shows medians over --runs and
goes to bench/results/connscale.md.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402  (bench/run.py: broker start/stop, rlimits, RSS, report helpers)
    BENCH, BUILD, HOST, Broker, Mosquitto, Mqttmesh, NotRunnable, Settings, _children, _kill,
    _on_signal, _spawn, kill_all, machine_info, median, ratio, raise_nofile, rss_bytes,
    build_c, prepare_brokers, tree_pids, wait_quiet,
)

CLIENT_SRC = BENCH / "connscale.c"
CLIENT = BUILD / "connscale"
RESULTS = BENCH / "results" / "connscale.md"
FIRST = 10_000          # "first 10k" connect rate


class ConnscaleMqttmesh(Mqttmesh):
    """mqttmesh as bench/run.py starts it, with a node name of its own (cluster ports
    4370+N / 5370+N for N in 91..99, away from the defaults and from run.py's 600..899)."""

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        cmd, env = super().command(port, workdir)
        env["MQTTMESH_NODE__NAME"] = f"connscale{91 + secrets.randbelow(9)}@127.0.0.1"
        env.pop("MQTTMESH_MQTT__MAX_MQUEUE_LEN", None)   # throughput setting, irrelevant here
        return cmd, env


def connscale_mosquitto() -> Mosquitto:
    # no limit on connections (also Mosquitto's default); the fd limit comes from the runner
    # (raised before the broker starts; `user root` in run.py's config keeps it)
    return Mosquitto(["max_connections -1"])


BROKERS = {"mqttmesh": ConnscaleMqttmesh, "mosquitto": connscale_mosquitto}


# ----------------------------------------------------------------------------- helpers
def build_client() -> None:
    build_c(CLIENT_SRC, CLIENT, "client")


class JsonLines:
    """Reads the client's JSON lines from a pipe, each read with a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def next(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line.startswith(b"{"):
                    return dict(json.loads(line))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return None
                self.buf += chunk


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (from /proc/PID/stat)."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / hz
    return total


def busy_seconds() -> float:
    """All CPUs' non-idle seconds since boot (from /proc/stat)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def tcp_ext() -> dict[str, int]:
    """Listen-queue counters from /proc/net/netstat (this network namespace)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    out: dict[str, int] = {}
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            out.update(zip(head.split()[1:], map(int, vals.split()[1:])))
    keys = ("ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "SyncookiesSent", "TCPBacklogDrop")
    return {k: out.get(k, 0) for k in keys}


def hwm_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def listen_backlog(port: int) -> int | None:
    """The listening socket's accept-queue limit (ss's Send-Q for a LISTEN socket)."""
    r = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                       timeout=10)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[2].isdigit():
            return int(f[2])
    return None


# ----------------------------------------------------------------------------- one run
def measure(broker: Broker, a: argparse.Namespace) -> dict[str, Any]:
    """Start the broker, ramp to a.conns connections, hold, ping, stop. One result dict."""
    try:
        broker.start()
    except NotRunnable:
        try:  # once more on a new port, in case of a port race with another process
            broker.start()
        except NotRunnable as e:
            return {"ok": False, "failure": str(e)}
    res: dict[str, Any] = {"ok": False, "port": broker.port}
    proc: subprocess.Popen[bytes] | None = None
    try:
        res["listen_backlog"] = listen_backlog(broker.port)
        time.sleep(a.settle)
        pids = tree_pids(broker.pid)
        res["rss_before"] = rss_bytes(broker.pid)
        cpu0, busy0, net0 = cpu_seconds(pids), busy_seconds(), tcp_ext()
        cmd = [str(CLIENT), "--host", HOST, "--port", str(broker.port), "--conns", str(a.conns),
               "--concurrency", str(a.concurrency), "--sources", str(a.sources),
               "--keepalive", "300", "--first", str(FIRST),
               "--connect-timeout", str(a.connect_timeout), "--stall", str(a.stall),
               "--ping-timeout", str(a.ping_timeout)]
        res["cmd"] = shlex.join(cmd)
        t_spawn = time.monotonic()
        proc = _spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = JsonLines(proc)
        ev = lines.next(a.connect_timeout + 30)
        if ev is None:
            res["failure"] = f"client gave no 'connected' line within {a.connect_timeout + 30:.0f}s"
            return res
        wall = time.monotonic() - t_spawn
        pids = tree_pids(broker.pid)
        cpu1, busy1, net1 = cpu_seconds(pids), busy_seconds(), tcp_ext()
        res.update(ramp=ev, rss_connected=rss_bytes(broker.pid),
                   broker_cpu_ramp_s=cpu1 - cpu0,
                   other_cpu_ramp_s=max(busy1 - busy0 - (cpu1 - cpu0) - ev.get("cpu_s", 0), 0.0),
                   ramp_wall_s=wall,
                   listen_queue={k: net1[k] - net0[k] for k in net0})
        # hold: idle connections, nothing sent (keepalive 300 s)
        end = time.monotonic() + a.hold
        while time.monotonic() < end and broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.5)
        res["rss_held"] = rss_bytes(broker.pid)
        res["hwm"] = hwm_bytes(broker.pid)
        assert proc.stdin is not None
        proc.stdin.write(b"ping\n")
        proc.stdin.flush()
        ping = lines.next(a.ping_timeout + 30)
        res["ping"] = ping
        res["rss_after_ping"] = rss_bytes(broker.pid)
        alive = broker.proc is not None and broker.proc.poll() is None
        proc.stdin.close()
        res["done"] = lines.next(60)
        proc.wait(30)
        n = int(ev.get("connected", 0))
        res["connected"] = n
        res["answered"] = ping.get("answered") if ping else None
        res["rss_per_conn_kb"] = (res["rss_held"] - res["rss_before"]) / n / 1024 if n else None
        problems = []
        if not alive:
            problems.append(f"broker exited with {broker.proc.returncode if broker.proc else '?'}: "
                            f"{broker.log_tail(5)}")
        if n < a.conns:
            bad = {k: v for k, v in ev.get("errors", {}).items() if v}
            problems.append(f"only {n:,} of {a.conns:,} connected (errors {bad}, last errno "
                            f"{ev.get('last_errno') or '-'})")
        if ping is None:
            problems.append("no answer to the 'ping' command")
        elif ping.get("answered") != a.conns:
            bad = {k: v for k, v in ping.get("errors", {}).items() if v}
            problems.append(f"{ping.get('answered'):,} of {a.conns:,} answered PINGREQ "
                            f"(errors {bad})")
        res["ok"] = not problems
        if problems:
            res["failure"] = "; ".join(problems)
        return res
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as e:
        res["failure"] = f"run failed: {e!r}"
        return res
    finally:
        if proc is not None:
            _kill(proc, grace=10.0)
            with contextlib.suppress(ValueError):
                _children.remove(proc)
        if broker.log and broker.log.exists():
            text = broker.log.read_text(errors="replace")
            res["log_bytes"] = len(text)
            res["log_emfile_lines"] = sum("Too many open files" in ln for ln in text.splitlines())
            res["log_tail"] = broker.log_tail(3)[-600:]
        broker.stop()


# ----------------------------------------------------------------------------- report
def cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


def fd_limit_note(a: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> str:
    """Why no broker can hold N connections here, with the evidence from this run."""
    L = [f"RLIMIT_NOFILE here is {a.nofile:,} (soft = hard) and cannot be raised: the runner "
         f"runs as uid {os.geteuid()} but without CAP_SYS_RESOURCE (CapEff bit 24 is "
         f"{'set' if cap_sys_resource() else 'clear'}), so `setrlimit` above the hard limit "
         "fails with EPERM (`prlimit --nofile=65536:65536` too). The client spreads its "
         "sockets over several processes; a broker is one process with one descriptor per "
         f"connection, so neither broker can hold more than about {a.nofile:,} connections. "
         "The connect-rate and RSS figures above are for the connections each broker did "
         "hold. What each broker did with the connections beyond its limit (sums over the "
         "runs; from the client's errors and the broker's log):\n"]
    for n, rs in results.items():
        errs: dict[str, int] = {}
        for r in rs:
            for k, v in (_get(r, "ramp", "errors") or {}).items():
                errs[k] = errs.get(k, 0) + v
        held = max((r.get("connected") or 0 for r in rs), default=0)
        L.append(f"- {n}: held at most {held:,}; the others: "
                 + (", ".join(f"{k} {v:,}" for k, v in errs.items() if v) or "none failed")
                 + f"; 'Too many open files' lines in its log: "
                 f"{sum(r.get('log_emfile_lines', 0) for r in rs):,}; still answered every "
                 "PINGREQ on the connections it held: "
                 + ("yes" if all(r.get("answered") == r.get("connected") for r in rs) else "no"))
    L.append("\n(`closed_before_connack` = EOF before CONNACK, `connect_reset` = ECONNRESET "
             "before CONNACK: the broker accepted the TCP connection and closed it at once; "
             "`timeout` = no CONNACK before the ramp ended.) Run on a machine where the limit "
             "can be raised (root with CAP_SYS_RESOURCE, or `ulimit -Hn` >= 2 x N) for the "
             f"{a.conns:,} figure.\n")
    return "\n".join(L)


def _get(r: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(r, dict):
            return None
        r = r.get(p)  # type: ignore[assignment]
    return r


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def _mb(b: float | None) -> float | None:
    return None if b is None else b / 1024 / 1024


def _per_conn_us(r: dict[str, Any]) -> float | None:
    n, cpu = r.get("connected"), r.get("broker_cpu_ramp_s")
    return cpu / n * 1e6 if n and cpu is not None else None


def _fmt(v: float | None, f: str) -> str:
    return "—" if v is None else format(v, f)


FIGURES: list[tuple[str, str, Any, str]] = [
    # label, unit, extractor, format
    ("connect rate, whole ramp", "conns/s", lambda r: _get(r, "ramp", "conn_per_s"), ",.0f"),
    (f"connect rate, first {FIRST:,}", "conns/s", lambda r: _get(r, "ramp", "first_conn_per_s"), ",.0f"),
    ("ramp time (to the last CONNACK)", "s", lambda r: _get(r, "ramp", "ramp_s"), ".1f"),
    ("handshake (connect -> CONNACK) p50", "ms", lambda r: _ms(_get(r, "ramp", "handshake_us", "p50")), ".1f"),
    ("handshake p99", "ms", lambda r: _ms(_get(r, "ramp", "handshake_us", "p99")), ".1f"),
    ("broker CPU during the ramp", "s", lambda r: r.get("broker_cpu_ramp_s"), ".1f"),
    ("broker CPU per connection", "µs", lambda r: _per_conn_us(r), ",.0f"),
    ("connected (of N)", "conns", lambda r: r.get("connected"), ",.0f"),
    ("RSS before (started, 1 probe)", "MB", lambda r: _mb(r.get("rss_before")), ",.1f"),
    ("RSS holding the idle connections", "MB", lambda r: _mb(r.get("rss_held")), ",.1f"),
    ("RSS increase per connection", "KB", lambda r: r.get("rss_per_conn_kb"), ".2f"),
    ("peak RSS (VmHWM)", "MB", lambda r: _mb(r.get("hwm")), ",.1f"),
    ("PINGREQ answered after the hold", "conns", lambda r: r.get("answered"), ",.0f"),
    ("time for all PINGRESPs", "s", lambda r: _get(r, "ping", "ping_s"), ".2f"),
]


def write_report(path: Path, results: dict[str, list[dict[str, Any]]], versions: dict[str, str],
                 a: argparse.Namespace, command: str, started: dt.datetime, elapsed: float,
                 unavailable: dict[str, str]) -> str:
    m = machine_info()
    names = list(BROKERS)
    L = ["# Connection scale on one node: mqttmesh vs Mosquitto\n"]
    L.append(f"- Command: `{command}`")
    L.append(f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')} (took {elapsed / 60:.1f} min)")
    L.append(f"- Machine: nproc {m['nproc']}, {m['cpu']}, {m['memory']} RAM, {m['os']}, kernel "
             f"{m['kernel']}, Python {m['python']} (shared with other work: see 'other CPU')")
    L.append("- Versions: " + "; ".join(f"{n} {versions.get(n, '—')}" for n in names))
    L.append(f"- Settings: N = {a.conns:,} connections, MQTT 3.1.1, clean session, keepalive "
             f"300 s, at most {a.concurrency} handshakes in flight, {a.sources} source addresses "
             f"(127.0.0.1..127.0.0.{a.sources}), hold {a.hold:g} s before the PINGREQ round, "
             f"{a.runs} run(s) per broker (median shown), brokers alternating within each run, "
             f"each broker freshly started per run; RLIMIT_NOFILE {a.nofile:,} (runner, "
             "client and brokers)")
    L.append("- Brokers: mqttmesh `python -m mqttmesh foreground`, environment only (TCP "
             "listener on a free loopback port, SSL/WS/WSS listeners and dashboard off, data "
             "dir in a temp dir), everything else default; Mosquitto (Debian) with run.py's "
             "config plus `max_connections -1`.")
    L.append("")
    L.append("Ratios are mqttmesh / Mosquitto. RSS is VmRSS of the broker process from "
             "`/proc/PID/status` (user-space memory; the kernel's socket memory is not in it); "
             "per connection = (RSS after the hold - RSS before the ramp) / connected.\n")
    L.append("| figure | unit | " + " | ".join(names) + " | mqttmesh/Mosquitto |")
    L.append("|---|---|" + "---|" * (len(names) + 1))
    for label, unit, ext, f in FIGURES:
        meds: dict[str, float | None] = {}
        cells = []
        for n in names:
            runs = results.get(n, [])
            vals = [v for v in (ext(r) for r in runs) if v is not None]
            meds[n] = median(vals)
            failed = sum(1 for r in runs if not r.get("ok"))
            cell = "not runnable" if n in unavailable else _fmt(meds[n], f)
            if failed and label.startswith("connected"):
                cell += f" ({failed}/{len(runs)} runs failed)"
            cells.append(cell)
        L.append(f"| {label} | {unit} | " + " | ".join(cells) + " | "
                 + ratio(meds.get("mqttmesh"), meds.get("mosquitto")) + " |")
    L.append("")
    for n, why in unavailable.items():
        L.append(f"- **{n}** not runnable: {why}")
    if a.nofile < a.conns + 100:
        L.append("## The file-descriptor limit of this machine\n")
        L.append(fd_limit_note(a, results))
    L.append("## Every run\n")
    L.append("| run | broker | ok | connected | conns/s (all) | conns/s (first 10k) | "
             "handshake p50 / p99 / max ms | broker CPU s | other CPU s | listen overflows | "
             "backlog | RSS before / held MB | KB/conn | answered | failure |")
    L.append("|" + "---|" * 15)
    for i in range(a.runs):
        for n in names:
            runs = results.get(n, [])
            if i >= len(runs):
                continue
            r = runs[i]
            hs = _get(r, "ramp", "handshake_us") or {}
            lq = r.get("listen_queue", {})
            L.append("| " + " | ".join([
                str(i + 1), n, "yes" if r.get("ok") else "**no**",
                _fmt(r.get("connected"), ",.0f"),
                _fmt(_get(r, "ramp", "conn_per_s"), ",.0f"),
                _fmt(_get(r, "ramp", "first_conn_per_s"), ",.0f"),
                " / ".join(_fmt(_ms(hs.get(k)), ".1f") for k in ("p50", "p99", "max")),
                _fmt(r.get("broker_cpu_ramp_s"), ".1f"), _fmt(r.get("other_cpu_ramp_s"), ".1f"),
                _fmt(lq.get("ListenOverflows"), ",.0f"),
                _fmt(r.get("listen_backlog"), "d"),
                f"{_fmt(_mb(r.get('rss_before')), '.1f')} / {_fmt(_mb(r.get('rss_held')), '.1f')}",
                _fmt(r.get("rss_per_conn_kb"), ".2f"),
                _fmt(r.get("answered"), ",.0f"),
                str(r.get("failure", "")).replace("|", "/")[:300],
            ]) + " |")
    L.append("")
    L.append("Broker CPU and other CPU are seconds over the ramp (client start to its "
             "'connected' line, which includes refusing the connections beyond a broker's "
             "limit). Other CPU = all CPUs' busy time minus broker and client: other people's "
             "work on this shared machine plus the kernel's loopback TCP processing (softirq, "
             "not charged to any process). Listen overflows = TcpExt ListenOverflows during the "
             "ramp (SYNs dropped because the accept queue was full; each costs the client a "
             "1 s SYN retransmit, hence a handshake p99 near 1 s); backlog = the listening "
             "socket's accept-queue limit (Mosquitto 2.0 hard-codes 100, mqttmesh asks 1024).\n")
    L.append("Connected over time (seconds, connections), first run of each broker:\n")
    for n in names:
        runs = results.get(n, [])
        prog = _get(runs[0], "ramp", "progress") if runs else None
        if prog:
            pts = prog[:: max(1, len(prog) // 12)]
            L.append(f"- {n}: " + ", ".join(f"{t:g} s: {c:,}" for t, c in pts))
    L.append("")
    L.append("Client command line (port varies per run): `"
             + next((r["cmd"] for rs in results.values() for r in rs if "cmd" in r), "—") + "`")
    text = "\n".join(L) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run, N = 10,000")
    ap.add_argument("--conns", type=int, help="connections per broker (default 50,000; --quick 10,000)")
    ap.add_argument("--runs", type=int, help="runs per broker (default 3; --quick 1)")
    ap.add_argument("--brokers", default=",".join(BROKERS), help="comma list (default: both)")
    ap.add_argument("--concurrency", type=int, default=500, help="handshakes in flight (default 500)")
    ap.add_argument("--sources", type=int, default=16,
                    help="source addresses 127.0.0.1..127.0.0.K (default 16)")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds idle before the PINGREQ round")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds after start before RSS 'before'")
    ap.add_argument("--connect-timeout", type=float, default=300.0, help="limit for the whole ramp, s")
    ap.add_argument("--stall", type=float, default=20.0,
                    help="end the ramp when no CONNACK arrived for S s (default 20)")
    ap.add_argument("--ping-timeout", type=float, default=60.0, help="limit for the PINGREQ round, s")
    ap.add_argument("--quiet-wait", type=float, default=None,
                    help="before each measurement wait up to S s for < 0.5 cores busy "
                         "(default 5, --quick 0)")
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument("--json", help="also write raw per-run results to this file")
    a = ap.parse_args(argv)
    a.conns = a.conns or (10_000 if a.quick else 50_000)
    a.runs = a.runs or (1 if a.quick else 3)
    quiet = a.quiet_wait if a.quiet_wait is not None else (0.0 if a.quick else 5.0)
    names = [n.strip() for n in a.brokers.split(",") if n.strip()]
    for n in names:
        if n not in BROKERS:
            ap.error(f"unknown broker {n!r}; choose from {', '.join(BROKERS)}")
    if a.conns > 250 * 28_000:
        ap.error("--conns too large for 250 source addresses")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    # runner, client and brokers inherit it; as root the hard limit is raised as well
    a.nofile = raise_nofile(max(65536, 2 * a.conns + 4096))
    if a.nofile < a.conns + 100:
        # the client splits its sockets over several processes; a broker is one process and
        # cannot: it will run out of file descriptors near RLIMIT_NOFILE. Measured anyway,
        # the report says so.
        print(f"warning: RLIMIT_NOFILE hard limit is {a.nofile:,} and cannot be raised here "
              f"(no CAP_SYS_RESOURCE?): a broker process can hold fewer than {a.conns:,} "
              "connections", file=sys.stderr, flush=True)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    given = sys.argv[1:] if argv is None else argv
    command = ".venv/bin/python bench/connscale.py" + (" " + shlex.join(given) if given else "")
    quiet_st = Settings(runs=1, warmup=0, duration=0, drain=0, settle=0, idle_conns=0, mqtt=4,
                        quiet_wait=quiet)
    try:
        build_client()
        brokers, versions, unavailable = prepare_brokers(names)
        results: dict[str, list[dict[str, Any]]] = {n: [] for n in brokers}
        for run in range(1, a.runs + 1):
            order = list(brokers) if run % 2 else list(reversed(brokers))
            for n in order:
                busy = wait_quiet(quiet_st) if quiet > 0 else -1.0
                print(f"[run {run}/{a.runs}] {n:10s} {a.conns:,} conns ...", end=" ", flush=True)
                r = measure(brokers[n], a)
                r["busy_before"] = busy
                results[n].append(r)
                print(("ok  " if r.get("ok") else "FAIL ")
                      + f"{_fmt(_get(r, 'ramp', 'conn_per_s'), ',.0f')} conns/s, first 10k "
                      + f"{_fmt(_get(r, 'ramp', 'first_conn_per_s'), ',.0f')} conns/s, "
                      + f"{_fmt(r.get('rss_per_conn_kb'), '.2f')} KB/conn, answered "
                      + f"{_fmt(r.get('answered'), ',.0f')}"
                      + ("" if r.get("ok") else f"  [{r.get('failure', '')[:300]}]"), flush=True)
        out = Path(a.output)
        text = write_report(out, results, versions, a, command, started,
                            time.monotonic() - t0, unavailable)
        if a.json:
            Path(a.json).write_text(json.dumps({"settings": {k: v for k, v in vars(a).items()},
                                                "versions": versions, "results": results,
                                                "unavailable": unavailable}, indent=1))
        print()
        print(text.split("## Every run")[0])
        print(f"written to {out}")
        return 0 if all(r.get("ok") for rs in results.values() for r in rs) else 1
    finally:
        kill_all()


if __name__ == "__main__":
    sys.exit(main())
