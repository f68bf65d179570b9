#!/usr/bin/env python3
"""Side-by-side MQTT benchmark: mqttmesh vs Mosquitto vs amqtt, in one run.

Run from the repository root:  .venv/bin/python bench/run.py [--quick] [--brokers ...]
(also `make bench`).  See bench/README.md for what each scenario means.

Every broker is started fresh for every measurement on its own free loopback port, driven
by the C load generator bench/loadgen.c (built here with gcc into bench/build/), and killed
afterwards.  Brokers run in their own process groups; all of them are killed on exit,
including Ctrl-C and SIGTERM.  Results (medians over --runs) go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / "build"
LOADGEN_SRC = BENCH / "loadgen.c"
LOADGEN = BUILD / "loadgen"
AMQTT_VENV = BENCH / ".venv-amqtt"
AMQTT_VERSION = "0.12.1"
MQTTMESH_PY = ROOT / ".venv" / "bin" / "python"
MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"  # all traffic stays on loopback


class NotRunnable(Exception):
    """A broker (or scenario) cannot run here; the message says why."""


# ----------------------------------------------------------------------------- processes
_children: list[subprocess.Popen[bytes]] = []


def _spawn(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)  # own process group
    _children.append(proc)
    return proc


def _kill(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    else:  # leader gone; make sure nothing in its group survives
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ValueError):
        _children.remove(proc)


def kill_all() -> None:
    for proc in list(_children):
        with contextlib.suppress(Exception):
            _kill(proc, grace=2.0)


def _on_signal(signum: int, _frame: Any) -> None:
    kill_all()
    raise SystemExit(128 + signum)


def clean_env() -> dict[str, str]:
    """The runner's environment minus mqttmesh/EMQX overrides (brokers get only ours)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MQTTMESH_", "EMQX_"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (brokers that fork are measured as a whole)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_bytes(pid: int) -> int:
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
    return total


def mqtt_probe(port: int, timeout: float = 1.0) -> bool:
    """True if the port answers an MQTT 3.1.1 CONNECT with CONNACK 0."""
    cid = b"bench-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(bytes([0x10, len(body)]) + body)
            data = b""
            while len(data) < 4:
                chunk = s.recv(4 - len(data))
                if not chunk:
                    return False
                data += chunk
            with contextlib.suppress(OSError):
                s.sendall(b"\xe0\x00")
            return data[0] == 0x20 and data[3] == 0
    except OSError:
        return False


def raise_nofile(want: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
        return max(want, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


# ----------------------------------------------------------------------------- brokers
class Broker:
    """One broker under test: started fresh per measurement, on its own free port."""

    name = "?"
    start_timeout = 20.0

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.workdir: Path | None = None
        self.log: Path | None = None

    def prepare(self) -> None:
        """Check/install what the broker needs; raise NotRunnable if impossible."""

    def version(self) -> str:
        return "?"

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self.port = free_port()
        cmd, env = self.command(self.port, self.workdir)
        self.log = self.workdir / "broker.log"
        with open(self.log, "wb") as logf:
            self.proc = _spawn(cmd, env={**clean_env(), **env}, cwd=self.workdir,
                               stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NotRunnable(f"{self.name} exited with status {self.proc.returncode} "
                                  f"during start-up: {self.log_tail()}")
            if mqtt_probe(self.port):
                return
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise NotRunnable(f"{self.name} did not accept MQTT on {HOST}:{self.port} within "
                          f"{self.start_timeout:.0f}s: {tail}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, n: int = 12) -> str:
        if not self.log or not self.log.exists():
            return ""
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-n:])

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc)
            self.proc = None
        if self.workdir is not None:
            subprocess.run(["rm", "-rf", str(self.workdir)], check=False)
            self.workdir = None


class Mqttmesh(Broker):
    name = "mqttmesh"
    start_timeout = 30.0

    def prepare(self) -> None:
        if not MQTTMESH_PY.exists():
            raise NotRunnable(f"{MQTTMESH_PY} missing (run `make test` or `make run` once)")
        r = subprocess.run([str(MQTTMESH_PY), "-c", "import mqttmesh.cli"], capture_output=True,
                           text=True, timeout=60)
        if r.returncode:
            raise NotRunnable("import mqttmesh.cli failed: " + r.stderr.strip().splitlines()[-1])

    def version(self) -> str:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True).stdout.strip()
        r = subprocess.run([str(MQTTMESH_PY), "-c",
                            "import importlib.metadata as m; print(m.version('mqttmesh'))"],
                           capture_output=True, text=True)
        uv = subprocess.run([str(MQTTMESH_PY), "-c", "import uvloop; print(uvloop.__version__)"],
                            capture_output=True, text=True)
        v = r.stdout.strip() or "?"
        return (f"{v} (git {rev}{' + uncommitted src changes' if dirty else ''}; "
                f"uvloop {uv.stdout.strip() or 'not installed'})")

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        # the node-name suffix sets the cluster port offset (SPEC §3): keep it away from
        # the defaults (4370/5370) that tests running in parallel may use
        offset = 600 + secrets.randbelow(300)
        env = {
            "MQTTMESH_NODE__NAME": f"bench{offset}@127.0.0.1",
            "MQTTMESH_NODE__COOKIE": secrets.token_hex(16),
            "MQTTMESH_NODE__DATA_DIR": str(workdir / "data"),
            "MQTTMESH_LISTENERS__TCP__DEFAULT__BIND": f"{HOST}:{port}",
            "MQTTMESH_LISTENERS__SSL__DEFAULT__ENABLE": "false",
            "MQTTMESH_LISTENERS__WS__DEFAULT__ENABLE": "false",
            "MQTTMESH_LISTENERS__WSS__DEFAULT__ENABLE": "false",
            "MQTTMESH_DASHBOARD__LISTENERS__HTTP__ENABLE": "false",
            # like Mosquitto's max_queued_messages below: a subscriber that falls behind by
            # more than the default 1000 would have QoS 1 messages dropped (EMQX semantics),
            # which a throughput run must not measure
            "MQTTMESH_MQTT__MAX_MQUEUE_LEN": "1000000",
        }
        return [str(MQTTMESH_PY), "-m", "mqttmesh", "foreground"], env


class Mosquitto(Broker):
    name = "mosquitto"

    def __init__(self, overrides: list[str] | None = None) -> None:
        super().__init__()
        self.overrides = overrides or []  # later lines win in mosquitto.conf

    def prepare(self) -> None:
        if not os.access(MOSQUITTO, os.X_OK):
            raise NotRunnable(f"{MOSQUITTO} not installed (apt-get install mosquitto)")

    def version(self) -> str:
        r = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True)
        first = (r.stdout or r.stderr).strip().splitlines()[0]
        return first.replace("mosquitto version ", "") + " (Debian package)"

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {port} {HOST}",
            "allow_anonymous true",
            "persistence false",
            # QoS 1/2 queue per client: large so that no message is dropped in QoS 1 runs
            "max_queued_messages 1000000",
            # outgoing QoS 1/2 window, the same as mqttmesh's (EMQX's) max_inflight default
            "max_inflight_messages 32",
            # asyncio/uvloop (mqttmesh, amqtt) set TCP_NODELAY; make Mosquitto do the same
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # do not drop to user 'mosquitto' (keeps rlimits)
        lines += self.overrides
        conf.write_text("\n".join(lines) + "\n")
        return [MOSQUITTO, "-c", str(conf)], {}


class Amqtt(Broker):
    name = "amqtt"

    def prepare(self) -> None:
        exe = AMQTT_VENV / "bin" / "amqtt"
        if exe.exists():
            return
        print(f"creating {AMQTT_VENV} with amqtt=={AMQTT_VERSION} ...", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        try:
            subprocess.run([base, "-m", "venv", str(AMQTT_VENV)], check=True, timeout=300)
            subprocess.run([str(AMQTT_VENV / "bin" / "pip"), "install", "-q",
                            f"amqtt=={AMQTT_VERSION}"], check=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as e:
            raise NotRunnable(f"could not install amqtt into {AMQTT_VENV}: {e}") from e

    def version(self) -> str:
        r = subprocess.run([str(AMQTT_VENV / "bin" / "python"), "-c",
                            "import amqtt; print(amqtt.__version__)"], capture_output=True, text=True)
        return (r.stdout.strip() or "?") + " (PyPI)"

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        conf = workdir / "amqtt.yaml"
        # only anonymous auth: the default config's packet/event logger and $SYS plugins
        # would cost amqtt throughput
        conf.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: {HOST}:{port}\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        return [str(AMQTT_VENV / "bin" / "amqtt"), "-c", str(conf)], {}


BROKERS: dict[str, type[Broker]] = {"mqttmesh": Mqttmesh, "mosquitto": Mosquitto, "amqtt": Amqtt}


# ----------------------------------------------------------------------------- loadgen
def build_c(src: Path, out: Path, what: str) -> None:
    """Compile ``src`` into ``out`` with gcc unless ``out`` is newer."""
    BUILD.mkdir(exist_ok=True)
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return
    cmd = ["gcc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-o", str(out), str(src)]
    print(f"building {what}:", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=120)


def build_loadgen() -> None:
    build_c(LOADGEN_SRC, LOADGEN, "loadgen")


def ctl_status_json(cmd: list[str], **kw: Any) -> dict[str, Any]:
    """Run a ``ctl cluster status --json`` command line; its JSON, or {"error": ...}."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        return {"error": (r.stderr or r.stdout).strip()[-300:]}
    try:
        return dict(json.loads(r.stdout))
    except json.JSONDecodeError:
        return {"error": "not JSON: " + r.stdout[-300:]}


def run_loadgen(args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [str(LOADGEN), "--host", HOST, *args]
    proc = _spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, errb = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, grace=2.0)
        return {"ok": False, "failure": f"loadgen timed out after {timeout:.0f}s", "cmd": shlex.join(cmd)}
    finally:
        with contextlib.suppress(ValueError):
            _children.remove(proc)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if not lines:
        return {"ok": False, "failure": f"loadgen exited {proc.returncode}: {errb.decode()[-500:]}",
                "cmd": shlex.join(cmd)}
    res: dict[str, Any] = json.loads(lines[-1])
    res["cmd"] = shlex.join(cmd)
    return res


# ----------------------------------------------------------------------------- scenarios
@dataclass
class Metric:
    key: str          # row id
    label: str
    unit: str
    higher_is_better: bool
    extract: Callable[[dict[str, Any]], float | None]


@dataclass
class Scenario:
    key: str
    title: str
    kind: str                       # "pubsub" | "idle"
    args: dict[str, Any]
    metrics: list[Metric]
    throughput: bool = False


def _sustained(r: dict[str, Any]) -> float | None:
    return r.get("sustained_out_per_s") if r.get("ok") else None


def _lat(p: str) -> Callable[[dict[str, Any]], float | None]:
    def f(r: dict[str, Any]) -> float | None:
        v = r.get("latency_us", {}).get(p)
        return v if r.get("ok") and v is not None and v >= 0 else None
    return f


def _per_conn_kb(r: dict[str, Any]) -> float | None:
    return r.get("rss_per_conn_kb") if r.get("ok") else None


SCENARIOS: list[Scenario] = [
    Scenario("a_qos0", "(a) 4 publishers -> 4 subscribers, distinct topics, 64 B, QoS 0", "pubsub",
             dict(pubs=4, subs=4, topics=4, qos=0, size=64),
             [Metric("a_qos0", "(a) 4->4, QoS 0", "msg/s", True, _sustained)], throughput=True),
    Scenario("a_qos1", "(a) 4 publishers -> 4 subscribers, distinct topics, 64 B, QoS 1", "pubsub",
             dict(pubs=4, subs=4, topics=4, qos=1, size=64),
             [Metric("a_qos1", "(a) 4->4, QoS 1", "msg/s", True, _sustained)], throughput=True),
    Scenario("b_fanout", "(b) 1 publisher -> 50 subscribers of one topic, 64 B, QoS 0", "pubsub",
             dict(pubs=1, subs=50, topics=1, qos=0, size=64),
             [Metric("b_fanout", "(b) fan-out 1->50, QoS 0", "deliveries/s", True, _sustained)],
             throughput=True),
    Scenario("c_qos0", "(c) latency, 1 -> 1, fixed 2,000 msg/s, 64 B, QoS 0", "pubsub",
             dict(pubs=1, subs=1, topics=1, qos=0, size=64, rate=2000),
             [Metric("c_qos0_p50", "(c) latency QoS 0 p50", "us", False, _lat("p50")),
              Metric("c_qos0_p99", "(c) latency QoS 0 p99", "us", False, _lat("p99"))]),
    Scenario("c_qos1", "(c) latency, 1 -> 1, fixed 2,000 msg/s, 64 B, QoS 1", "pubsub",
             dict(pubs=1, subs=1, topics=1, qos=1, size=64, rate=2000),
             [Metric("c_qos1_p50", "(c) latency QoS 1 p50", "us", False, _lat("p50")),
              Metric("c_qos1_p99", "(c) latency QoS 1 p99", "us", False, _lat("p99"))]),
    Scenario("d_idle", "(d) RSS per idle connection, 10,000 connected clients", "idle",
             dict(conns=10000),
             [Metric("d_idle", "(d) RSS per idle connection", "KB", False, _per_conn_kb)]),
]
SCENARIO_KEYS = [s.key for s in SCENARIOS] + ["cluster"]


@dataclass
class Settings:
    runs: int
    warmup: float
    duration: float
    drain: float
    settle: float
    idle_conns: int
    mqtt: int
    rate: int = 2000
    quiet_wait: float = 0.0     # seconds to wait for a quiet machine before a measurement
    quiet_below: float = 0.5    # "quiet" = fewer cores than this busy


def measure_pubsub(broker: Broker, sc: Scenario, st: Settings) -> dict[str, Any]:
    a = sc.args
    args = ["--port", str(broker.port), "--mqtt", str(st.mqtt),
            "--pubs", str(a["pubs"]), "--subs", str(a["subs"]), "--topics", str(a["topics"]),
            "--qos", str(a["qos"]), "--size", str(a["size"]),
            "--warmup", str(st.warmup), "--duration", str(st.duration), "--drain", str(st.drain),
            "--broker-pid", ",".join(map(str, tree_pids(broker.pid)))]
    if a.get("rate"):
        args += ["--rate", str(a["rate"])]
    return run_loadgen(args, timeout=st.warmup + st.duration + st.drain + 90)


def measure_idle(broker: Broker, sc: Scenario, st: Settings) -> dict[str, Any]:
    time.sleep(st.settle)
    rss0 = rss_bytes(broker.pid)
    cmd = [str(LOADGEN), "--host", HOST, "--mode", "idle", "--port", str(broker.port),
           "--mqtt", str(st.mqtt), "--conns", str(st.idle_conns), "--connect-timeout", "180",
           "--hold", "600"]
    proc = _spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline().decode()
        if not first.startswith("{"):
            _kill(proc)
            return {"ok": False, "failure": "idle loadgen produced no output"}
        ev = json.loads(first)
        time.sleep(st.settle)
        rss1 = rss_bytes(broker.pid)
        alive = broker.proc is not None and broker.proc.poll() is None
        proc.stdin.close()
        out = proc.stdout.read().decode()
        proc.wait(60)
    except (subprocess.TimeoutExpired, OSError, json.JSONDecodeError) as e:
        _kill(proc)
        return {"ok": False, "failure": f"idle run failed: {e}"}
    finally:
        with contextlib.suppress(ValueError):
            _children.remove(proc)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    res: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False}
    n = ev.get("clients", 0)
    res.update(rss_before=rss0, rss_after=rss1, broker_alive=alive, cmd=shlex.join(cmd),
               rss_per_conn_kb=(rss1 - rss0) / n / 1024 if n else None)
    if not alive:
        res["ok"] = False
        res["failure"] = "broker died while holding idle connections"
    return res


def machine_busy(window: float = 1.0) -> float:
    """Cores busy (all processes) over `window` seconds, from /proc/stat."""
    def sample() -> tuple[float, float]:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return float(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]), float(sum(v))
    b0, t0 = sample()
    time.sleep(window)
    b1, t1 = sample()
    ncpu = os.cpu_count() or 1
    return (b1 - b0) / (t1 - t0) * ncpu if t1 > t0 else 0.0


def wait_quiet(st: Settings) -> float:
    """Wait up to st.quiet_wait s for a 1-s window with < st.quiet_below cores busy."""
    deadline = time.monotonic() + st.quiet_wait
    busy = machine_busy()
    while busy >= st.quiet_below and time.monotonic() < deadline:
        busy = machine_busy()
    return busy


def run_one(broker: Broker, sc: Scenario, st: Settings) -> dict[str, Any]:
    busy_before = wait_quiet(st) if st.quiet_wait > 0 else -1.0
    try:
        broker.start()
    except NotRunnable:
        try:  # once more on a new port, in case of a port race with another process
            broker.start()
        except NotRunnable as e:
            return {"ok": False, "failure": str(e), "start_failed": True}
    try:
        res = measure_idle(broker, sc, st) if sc.kind == "idle" else measure_pubsub(broker, sc, st)
        res["busy_before"] = busy_before
        if broker.proc is not None and broker.proc.poll() is not None:
            res["ok"] = False
            res["failure"] = (f"broker exited with {broker.proc.returncode} during the run: "
                              f"{broker.log_tail()}")
        elif not res.get("ok") and "failure" not in res:
            bad = {k: v for k, v in res.get("errors", {}).items() if v}
            res["failure"] = f"loadgen reported errors {bad}; broker log: {broker.log_tail(5)}"
        return res
    finally:
        broker.stop()


# ----------------------------------------------------------------------------- cluster
class MqttmeshClusterNode(Mqttmesh):
    """One node of a two-node mqttmesh cluster on 127.0.0.1 (static discovery)."""

    start_timeout = 60.0

    def __init__(self, node_name: str, seeds: list[str], cookie: str) -> None:
        super().__init__()
        self.node_name, self.seeds, self.cookie = node_name, seeds, cookie
        self.conf: Path | None = None

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        self.conf = workdir / "mqttmesh.conf"
        seeds = ", ".join(f'"{n}"' for n in self.seeds)
        self.conf.write_text(
            f'node {{\n  name = "{self.node_name}"\n  cookie = "{self.cookie}"\n'
            f'  data_dir = "{workdir / "data"}"\n}}\n'
            f"cluster {{\n  name = benchcl\n  discovery_strategy = static\n"
            f"  static.seeds = [{seeds}]\n}}\n"
            f'listeners.tcp.default.bind = "{HOST}:{port}"\n'
            "listeners.ssl.default.enable = false\n"
            "listeners.ws.default.enable = false\n"
            "listeners.wss.default.enable = false\n"
            "dashboard.listeners.http.enable = false\n"
            "mqtt.max_mqueue_len = 1000000\n")
        # no MQTTMESH_* overrides: the file says it all (and `ctl` reads the same file)
        return [str(MQTTMESH_PY), "-m", "mqttmesh", "foreground", "-c", str(self.conf)], {}

    def join(self, other: str) -> str:
        assert self.conf is not None
        r = subprocess.run([str(MQTTMESH_PY), "-m", "mqttmesh", "-c", str(self.conf), "ctl",
                            "cluster", "join", other], capture_output=True, text=True,
                           timeout=60, env=clean_env())
        return f"exit {r.returncode}: " + " ".join((r.stdout + r.stderr).split())[:300]

    def status(self) -> dict[str, Any]:
        assert self.conf is not None
        return ctl_status_json([str(MQTTMESH_PY), "-m", "mqttmesh", "-c", str(self.conf), "ctl",
                                "cluster", "status", "--json"], timeout=30, env=clean_env())


def cluster_scenario(st: Settings) -> dict[str, Any]:
    """Cross-node throughput as a ratio of same-node throughput.

    Two mqttmesh nodes (benchN@127.0.0.1, benchN+1@127.0.0.1, static discovery, MQTT on
    two free ports) must both list each other in `ctl cluster status --json`; then scenario
    (a) at QoS 0 and QoS 1 runs alternately with every client on node 1 (same-node) and
    with the publishers on node 1 and the subscribers on node 2 (cross-node: every message
    is forwarded once over the cluster RPC link). Raises NotRunnable, with the reason, if
    the cluster does not form.
    """
    base = 600 + secrets.randbelow(290)   # cluster ports 4370+N / 5370+N away from tests'
    names = [f"bench{base}@127.0.0.1", f"bench{base + 1}@127.0.0.1"]
    cookie = secrets.token_hex(16)
    nodes = [MqttmeshClusterNode(n, names, cookie) for n in names]
    try:
        for node in nodes:
            node.prepare()
            try:
                node.start()
            except NotRunnable as e:
                raise NotRunnable(f"cluster node {node.node_name} did not start: {e}") from e
        deadline = time.monotonic() + 60
        join_at = time.monotonic() + 10
        last: list[dict[str, Any]] = []
        joined = ""
        while True:
            last = [node.status() for node in nodes]
            if all(set(names) <= set(s.get("running_nodes", [])) for s in last):
                break
            if not joined and time.monotonic() > join_at:
                # static discovery did not do it (yet): ask explicitly, as with `manual`
                joined = nodes[1].join(names[0])
                print(f"[cluster] static discovery did not form the cluster in 10 s; "
                      f"ctl cluster join: {joined}", flush=True)
            if time.monotonic() > deadline:
                raise NotRunnable(f"the two nodes did not form a cluster within 60 s: {last}; "
                                  f"logs: {[n.log_tail(4) for n in nodes]}")
            time.sleep(1)
        out: dict[str, Any] = {"nodes": names,
                               "formed_by": "ctl cluster join" if joined else "static discovery"}
        for qos in (0, 1):
            for run in range(st.runs):
                for where, sub_port in (("same", nodes[0].port), ("cross", nodes[1].port)):
                    args = ["--port", str(nodes[0].port), "--sub-port", str(sub_port),
                            "--mqtt", str(st.mqtt), "--pubs", "4", "--subs", "4",
                            "--topics", "4", "--qos", str(qos), "--size", "64",
                            "--warmup", str(st.warmup), "--duration", str(st.duration),
                            "--drain", str(st.drain), "--topic-prefix", f"bench/r{run}{where}/t",
                            # routes of the new subscriptions must reach node 1 first
                            "--start-delay", "1",
                            "--broker-pid", ",".join(str(n.pid) for n in nodes)]
                    res = run_loadgen(args, timeout=st.warmup + st.duration + st.drain + 90)
                    for node in nodes:
                        if node.proc is None or node.proc.poll() is not None:
                            res["ok"] = False
                            res["failure"] = f"{node.node_name} exited: {node.log_tail()}"
                    if not res.get("ok") and "failure" not in res:
                        bad = {k: v for k, v in res.get("errors", {}).items() if v}
                        res["failure"] = (f"loadgen reported errors {bad} (sent {res.get('sent')}, "
                                          f"expected {res.get('expected')}, received "
                                          f"{res.get('received')})")
                    out.setdefault(f"qos{qos}_{where}", []).append(res)
                    print(f"[cluster] qos{qos} {where:5s} run {run + 1}: "
                          f"{'ok' if res.get('ok') else 'FAIL'} "
                          f"{res.get('sustained_out_per_s', 0):,.0f} msg/s"
                          f"{'' if res.get('ok') else '  [' + str(res.get('failure'))[:300] + ']'}",
                          flush=True)
        return out
    finally:
        for node in nodes:
            node.stop()


# ----------------------------------------------------------------------------- self-test
def selftest(st: Settings) -> int:
    """The loadgen must flag lost QoS 1 messages and broker disconnects (exit 1, ok=false).

    1. Mosquitto with max_queued_messages 1 / max_inflight_messages 1 drops QoS 1 messages
       for subscribers that fall behind: the loadgen must report lost > 0 and seq_gaps > 0.
    2. Mosquitto killed with SIGKILL in the middle of a run: disconnects > 0.
    3. A healthy Mosquitto: ok, nothing lost (no false alarm).
    """
    failures = 0
    base = ["--mqtt", str(st.mqtt), "--pubs", "4", "--subs", "4", "--topics", "4", "--qos", "1",
            "--warmup", "0.2", "--drain", "3"]

    def check(name: str, cond: bool, res: dict[str, Any]) -> None:
        nonlocal failures
        bad = {k: v for k, v in res.get("errors", {}).items() if v}
        print(f"{'PASS' if cond else 'FAIL'}  {name}: ok={res.get('ok')} errors={bad}")
        failures += not cond

    b = Mosquitto(["max_queued_messages 1", "max_inflight_messages 1"])
    b.start()
    try:
        res = run_loadgen(["--port", str(b.port), *base, "--duration", "2"], timeout=60)
    finally:
        b.stop()
    errs = res.get("errors", {})
    check("lost QoS 1 messages are detected", not res.get("ok") and errs.get("lost", 0) > 0
          and errs.get("seq_gaps", 0) > 0, res)

    b = Mosquitto()
    b.start()
    try:
        cmd = [str(LOADGEN), "--host", HOST, "--port", str(b.port), *base, "--duration", "4"]
        proc = _spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        assert b.proc is not None
        os.killpg(b.proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        _children.remove(proc)
        res = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        b.stop()
    check("broker disconnects are detected", not res.get("ok")
          and res.get("errors", {}).get("disconnects", 0) > 0, res)

    b = Mosquitto()
    b.start()
    try:
        res = run_loadgen(["--port", str(b.port), *base, "--duration", "2"], timeout=60)
    finally:
        b.stop()
    check("a healthy broker passes", bool(res.get("ok")) and res.get("received") == res.get("expected"), res)
    print("selftest", "passed" if not failures else f"FAILED ({failures})")
    return 1 if failures else 0


# ----------------------------------------------------------------------------- report
def machine_info() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    osname = "?"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"nproc": str(os.cpu_count()), "cpu": model, "memory": mem, "os": osname,
            "kernel": platform.release(), "python": platform.python_version(),
            "gcc": gcc[0] if gcc else "?"}


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "KB":
        return f"{v:.2f}"
    if unit == "us":
        return f"{v:,.0f}"
    return f"{v:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    r = a / b
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def cpu_cell(r: dict[str, Any]) -> str:
    b, lg, m = (r.get("broker_cpu_share", -1), r.get("loadgen_cpu_share", -1),
                r.get("machine_busy_cores", -1))
    if b < 0 or lg < 0 or m < 0:
        return "—"
    return f"{b:.2f} / {lg:.2f} / {max(m - b - lg, 0.0):.2f}"


def median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def write_report(path: Path, results: dict[str, dict[str, list[dict[str, Any]]]],
                 names: list[str], unavailable: dict[str, str], versions: dict[str, str],
                 st: Settings, command: str, started: dt.datetime, elapsed: float,
                 cluster_note: str | None, scenarios: list[Scenario],
                 cluster: dict[str, Any] | None = None) -> str:
    m = machine_info()
    cols = ["mqttmesh", "mosquitto", "amqtt"]
    L: list[str] = []
    L.append("# mqttmesh benchmark results\n")
    L.append(f"- Command: `{command}`")
    L.append(f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')} (took {elapsed / 60:.1f} min)")
    L.append(f"- Machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory']} RAM, {m['os']}, "
             f"kernel {m['kernel']} (shared and noisy; brokers and load generator share it)")
    L.append(f"- Versions: " + "; ".join(f"{n} {versions.get(n, '—')}" for n in cols)
             + f"; Python {m['python']}; {m['gcc']}")
    L.append(f"- Settings: {st.runs} run(s) per figure (median shown), warm-up {st.warmup:g} s, "
             f"measure {st.duration:g} s, (c) at {st.rate:,} msg/s, MQTT {'3.1.1' if st.mqtt == 4 else '5.0'}, "
             f"{st.idle_conns:,} idle clients in (d); every broker freshly started per measurement"
             + (f"; before each measurement waited up to {st.quiet_wait:g} s for < "
                f"{st.quiet_below:g} cores busy" if st.quiet_wait > 0 else ""))
    L.append("- Broker settings: defaults except a loopback listener on a free port, other "
             "listeners off, per-subscriber queue limit raised to 1,000,000 (mqttmesh "
             "`mqtt.max_mqueue_len`, Mosquitto `max_queued_messages`); Mosquitto also "
             "`max_inflight_messages 32` (= mqttmesh `mqtt.max_inflight`), `set_tcp_nodelay true`, "
             "`persistence false`; amqtt with only the anonymous-auth plugin. See bench/README.md.")
    L.append("")
    L.append("Throughput = messages received by the subscribers / time from the first publish "
             "to the last delivery (so a broker that accepts faster than it delivers is not "
             "flattered). Latency = publish -> delivery, same clock. Ratios are "
             "mqttmesh / other: above 1x is better for throughput, below 1x better for latency "
             "and RSS.\n")
    saturated = False
    head = "| scenario | unit | " + " | ".join(cols) + " | mqttmesh/Mosquitto | mqttmesh/amqtt |"
    L.append(head)
    L.append("|" + "---|" * (len(cols) + 4))
    for sc in scenarios:
        for met in sc.metrics:
            meds: dict[str, float | None] = {}
            cells = []
            for n in cols:
                if n in unavailable:
                    meds[n] = None
                    cells.append("not runnable" if n == "mqttmesh" else "not run")
                    continue
                if n not in names:
                    meds[n] = None
                    cells.append("not run")
                    continue
                runs = results.get(sc.key, {}).get(n, [])
                vals = [v for v in (met.extract(r) for r in runs) if v is not None]
                meds[n] = median(vals)
                bad = len(runs) - len(vals)
                cell = fmt(meds[n], met.unit)
                rate = sc.args.get("rate")
                if rate and vals:
                    got = median([r.get("sustained_out_per_s", 0.0) for r in runs if r.get("ok")])
                    if got is not None and got < 0.95 * rate:
                        cell += f" † ({got:,.0f} msg/s)"
                        saturated = True
                if bad:
                    cell += f" ({bad}/{len(runs)} failed)"
                cells.append(cell)
            L.append(f"| {met.label} | {met.unit} | " + " | ".join(cells) + " | "
                     + ratio(meds["mqttmesh"], meds["mosquitto"]) + " | "
                     + ratio(meds["mqttmesh"], meds["amqtt"]) + " |")
    L.append("")
    if saturated:
        L.append("† the broker could not keep up with the fixed rate (achieved rate in brackets): "
                 "its latency figure is mostly queueing delay, not the latency at a moderate "
                 "load.\n")
    if unavailable:
        L.append("Not runnable in this run:\n")
        for n, why in unavailable.items():
            L.append(f"- **{n}**: {why}")
        L.append("")
    if cluster_note:
        L.append(f"Cluster scenario (cross-node / same-node throughput): {cluster_note}\n")
    if cluster:
        L.append("## Cluster: cross-node vs same-node throughput\n")
        L.append(f"Two mqttmesh nodes ({', '.join(cluster['nodes'])}, cluster formed by "
                 f"{cluster['formed_by']}), scenario (a); same-node = "
                 "all clients on node 1, cross-node = publishers on node 1, subscribers on node "
                 "2 (each message forwarded once). Broker CPU is both nodes together.\n")
        L.append("| QoS | same-node msg/s | cross-node msg/s | cross/same | failed runs |")
        L.append("|---|---|---|---|---|")
        for qos in (0, 1):
            same = cluster.get(f"qos{qos}_same", [])
            cross = cluster.get(f"qos{qos}_cross", [])
            ms = median([r["sustained_out_per_s"] for r in same if r.get("ok")])
            mc = median([r["sustained_out_per_s"] for r in cross if r.get("ok")])
            failed = [r.get("failure", "?")[:200] for r in same + cross if not r.get("ok")]
            L.append(f"| {qos} | {fmt(ms, 'msg/s')} | {fmt(mc, 'msg/s')} | {ratio(mc, ms)} | "
                     f"{len(failed)}{': ' + '; '.join(failed).replace('|', '/') if failed else ''} |")
        L.append("")

    # the load generator is not the bottleneck
    L.append("## Is the load generator the bottleneck?\n")
    L.append("CPU used during the measurement window, in cores (1.00 = one core busy), medians. "
             "Each broker serves clients from one thread, so a broker near 1.00 is saturated. "
             "A broker well below 1.00 while the load generator is also far below 1.00 was "
             "short of CPU because of the other load on the machine, not because of the load "
             "generator. The last column is the highest rate this load generator produced "
             "against any broker in the same scenario of this run: a lower bound of its own "
             "capacity, so a broker measured below it was not limited by the load generator.\n")
    L.append("| scenario | broker | msg/s | broker CPU | loadgen CPU | other load on the machine "
             "| loadgen's best in this scenario |")
    L.append("|---|---|---|---|---|---|---|")
    for sc in scenarios:
        if not sc.throughput:
            continue
        best = 0.0
        for n in names:
            for r in results.get(sc.key, {}).get(n, []):
                if r.get("ok"):
                    best = max(best, r.get("sustained_out_per_s", 0.0))
        for n in names:
            runs = [r for r in results.get(sc.key, {}).get(n, []) if r.get("ok")]
            if not runs:
                continue
            rate = median([r["sustained_out_per_s"] for r in runs])
            bc = median([r["broker_cpu_share"] for r in runs if r.get("broker_cpu_share", -1) >= 0])
            lc = median([r["loadgen_cpu_share"] for r in runs])
            other = median([r["machine_busy_cores"] - r["loadgen_cpu_share"] - r["broker_cpu_share"]
                            for r in runs if r.get("machine_busy_cores", -1) >= 0
                            and r.get("broker_cpu_share", -1) >= 0])
            L.append(f"| {sc.key} | {n} | {fmt(rate, 'msg/s')} | "
                     f"{'—' if bc is None else f'{bc:.2f}'} | {lc:.2f} | "
                     f"{'—' if other is None else f'{max(other, 0.0):.2f}'} | {fmt(best, 'msg/s')} |")
    L.append("")
    L.append("Other load = all CPUs' busy time minus broker and loadgen (other engineers' work on "
             f"this shared {m['nproc']}-CPU machine); it varies between runs and explains most of "
             "the spread in the per-run table.\n")

    # per-run details and failures
    L.append("## Every run\n")
    L.append("| scenario | broker | run | ok | in msg/s | out msg/s (window) | sustained out | "
             "p50 us | p99 us | RSS/conn KB | broker / loadgen / other CPU | failure |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sc in scenarios:
        for n in names:
            for i, r in enumerate(results.get(sc.key, {}).get(n, []), 1):
                lat = r.get("latency_us", {})
                L.append("| " + " | ".join([
                    sc.key, n, str(i), "yes" if r.get("ok") else "**no**",
                    fmt(r.get("msgs_in_per_s"), "msg/s"), fmt(r.get("msgs_out_per_s"), "msg/s"),
                    fmt(r.get("sustained_out_per_s"), "msg/s"),
                    fmt(lat.get("p50"), "us"), fmt(lat.get("p99"), "us"),
                    fmt(r.get("rss_per_conn_kb"), "KB"),
                    cpu_cell(r),
                    str(r.get("failure", "")).replace("|", "/")[:300],
                ]) + " |")
    L.append("")
    L.append("Loadgen command lines (port and pids vary per run): ")
    seen = set()
    for sc in scenarios:
        for n in names:
            for r in results.get(sc.key, {}).get(n, [])[:1]:
                if "cmd" in r and sc.key not in seen:
                    seen.add(sc.key)
                    L.append(f"- {sc.key}: `{r['cmd']}`")
    text = "\n".join(L) + "\n"
    path.write_text(text)
    return text


# ----------------------------------------------------------------------------- main

def prepare_brokers(names: list[str]) -> tuple[dict[str, Broker], dict[str, str], dict[str, str]]:
    """Prepare each named broker: (runnable brokers, their versions, why others are not)."""
    brokers: dict[str, Broker] = {}
    versions: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    for n in names:
        b = BROKERS[n]()
        try:
            b.prepare()
            versions[n] = b.version()
            brokers[n] = b
        except (NotRunnable, subprocess.SubprocessError, OSError) as e:
            unavailable[n] = str(e)
            print(f"{n}: not runnable: {e}", flush=True)
    return brokers, versions, unavailable

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run, shorter durations")
    ap.add_argument("--brokers", default="mqttmesh,mosquitto,amqtt",
                    help="comma list of brokers to measure (default: all three)")
    ap.add_argument("--scenarios", default=",".join(SCENARIO_KEYS),
                    help="comma list of " + ",".join(SCENARIO_KEYS))
    ap.add_argument("--runs", type=int, help="runs per figure (default 3, --quick 1)")
    ap.add_argument("--duration", type=float, help="measurement seconds (default 5, --quick 2)")
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--rate", type=int, default=2000, help="fixed total rate for (c), msg/s")
    ap.add_argument("--quiet-wait", type=float, default=None,
                    help="before each measurement wait up to this many seconds for the machine "
                         "to be quiet (< 0.5 cores busy) (default 5, --quick 0)")
    ap.add_argument("--selftest", action="store_true",
                    help="only check that the loadgen detects lost QoS 1 messages and broker "
                         "disconnects (against deliberately misconfigured/killed Mosquitto)")
    ap.add_argument("--mqtt", type=int, choices=(4, 5), default=4, help="4 = MQTT 3.1.1, 5 = MQTT 5.0")
    ap.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--json", help="also write raw per-run results to this file")
    a = ap.parse_args(argv)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    names = [n.strip() for n in a.brokers.split(",") if n.strip()]
    for n in names:
        if n not in BROKERS:
            ap.error(f"unknown broker {n!r}; choose from {', '.join(BROKERS)}")
    wanted = [k.strip() for k in a.scenarios.split(",") if k.strip()]
    for k in wanted:
        if k not in SCENARIO_KEYS:
            ap.error(f"unknown scenario {k!r}; choose from {', '.join(SCENARIO_KEYS)}")
    scenarios = [s for s in SCENARIOS if s.key in wanted]
    st = Settings(runs=a.runs or (1 if a.quick else 3),
                  warmup=0.5 if a.quick else 1.0,
                  duration=a.duration or (2.0 if a.quick else 5.0),
                  drain=60.0, settle=1.0 if a.quick else 2.0,
                  idle_conns=a.idle_conns, mqtt=a.mqtt, rate=a.rate,
                  quiet_wait=a.quiet_wait if a.quiet_wait is not None else (0.0 if a.quick else 5.0))
    for sc in SCENARIOS:
        if "rate" in sc.args:
            sc.args["rate"] = a.rate
    if a.selftest:
        try:
            build_loadgen()
            return selftest(st)
        finally:
            kill_all()
    nofile = raise_nofile(max(65536, 2 * a.idle_conns + 1024))
    if nofile < a.idle_conns + 100:
        print(f"warning: RLIMIT_NOFILE is {nofile}, below {a.idle_conns} idle clients", file=sys.stderr)

    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    given = sys.argv[1:] if argv is None else argv
    command = ".venv/bin/python bench/run.py" + (" " + shlex.join(given) if given else "")
    try:
        build_loadgen()
        brokers, versions, unavailable = prepare_brokers(names)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for run in range(1, st.runs + 1):
            for sc in scenarios:
                for n, b in brokers.items():
                    if n in unavailable:
                        continue
                    print(f"[run {run}/{st.runs}] {sc.key:9s} {n:10s} ...", end=" ", flush=True)
                    res = run_one(b, sc, st)
                    results.setdefault(sc.key, {}).setdefault(n, []).append(res)
                    if res.get("start_failed"):
                        unavailable[n] = res["failure"]
                    summary = (f"{res.get('sustained_out_per_s', 0):,.0f} msg/s" if sc.throughput
                               else f"p50 {res.get('latency_us', {}).get('p50', -1):,.0f} us, "
                                    f"p99 {res.get('latency_us', {}).get('p99', -1):,.0f} us"
                               if sc.kind == "pubsub"
                               else f"{res.get('rss_per_conn_kb') or 0:.2f} KB/conn")
                    print(("ok  " if res.get("ok") else "FAIL ") + summary
                          + ("" if res.get("ok") else f"  [{res.get('failure', '')[:300]}]"), flush=True)
        cluster_note = None
        cluster: dict[str, Any] | None = None
        if "cluster" in wanted:
            if "mqttmesh" not in names or "mqttmesh" in unavailable:
                cluster_note = "not run (mqttmesh not selected or not runnable)"
            else:
                try:
                    cluster = cluster_scenario(st)
                except NotRunnable as e:
                    cluster_note = f"not runnable: {e}"
                    print("[cluster] not runnable:", e, flush=True)
        out = Path(a.output)
        text = write_report(out, results, [n for n in names], unavailable, versions, st, command,
                            started, time.monotonic() - t0, cluster_note, scenarios, cluster)
        if a.json:
            Path(a.json).write_text(json.dumps({"results": results, "unavailable": unavailable,
                                                "versions": versions, "cluster": cluster}, indent=1))
        print()
        print(text.split("## Is the load generator")[0])
        print(f"written to {out}")
        return 0
    finally:
        kill_all()


if __name__ == "__main__":
    sys.exit(main())
