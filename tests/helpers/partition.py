"""Network partitions between loopback addresses, for fault tests (iptables, root only).

``Partitioner(ports)`` owns one iptables chain (``MQM<pid><n>``) jumped to from ``INPUT``;
``cut(a, b)`` drops TCP packets between hosts ``a`` and ``b`` (both directions) whose source
or destination port is one of ``ports`` (the cluster ports of the test's nodes), so parallel
tests and other traffic on the same addresses are untouched. ``heal()`` empties the chain;
``close()`` removes it (call it in a fixture's teardown, also on failure). Only loopback
addresses are accepted. ``available()`` says whether iptables can be used here.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

__all__ = ["Partitioner", "available", "QosTraffic", "Tally"]

_count = itertools.count()


def available() -> bool:
    if shutil.which("iptables") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["iptables", "-S", "INPUT"], capture_output=True).returncode == 0


def _ipt(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True,
                          check=check)


class Partitioner:
    def __init__(self, ports: list[int]) -> None:
        if not ports or len(ports) > 15:
            raise ValueError("1..15 ports (iptables multiport)")
        self.ports = ",".join(str(p) for p in sorted(set(ports)))
        self.chain = f"MQM{os.getpid()}x{next(_count)}"
        _ipt("-N", self.chain)
        _ipt("-I", "INPUT", "-j", self.chain)
        self.cuts: set[tuple[str, str]] = set()

    def cut(self, a: str, b: str) -> None:
        for host in (a, b):
            if not host.startswith("127."):
                raise ValueError(f"only loopback addresses: {host}")
        for src, dst in ((a, b), (b, a)):
            _ipt("-A", self.chain, "-s", src, "-d", dst, "-p", "tcp",
                 "-m", "multiport", "--ports", self.ports, "-j", "DROP")
        self.cuts.add((a, b))

    def isolate(self, host: str, others: list[str]) -> None:
        for other in others:
            if other != host:
                self.cut(host, other)

    def heal(self) -> None:
        _ipt("-F", self.chain)
        self.cuts.clear()

    def close(self) -> None:
        _ipt("-D", "INPUT", "-j", self.chain, check=False)
        _ipt("-F", self.chain, check=False)
        _ipt("-X", self.chain, check=False)

    def __enter__(self) -> Partitioner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QosTraffic:
    """Steady QoS 1 traffic from one publisher to subscribers, with loss/duplicate counts.

    ``start()`` runs a thread publishing ``"<seq>"`` on ``topic`` at ``rate`` msg/s (paho
    client ``pub``, each publish waits for its PUBACK: a message counts as *acknowledged*
    once the publisher's node accepted it). ``finish(deadline)`` stops, waits until every
    subscriber holds every acknowledged message (or the deadline), and returns a ``Tally``.
    """

    def __init__(self, pub, subs: list, topic: str, rate: float = 50.0) -> None:
        import threading

        self.pub, self.subs, self.topic, self.rate = pub, subs, topic, rate
        self.acked: list[int] = []
        self.acked_at: dict[int, float] = {}
        """seq -> time.monotonic() of its PUBACK."""
        self.unacked = 0
        self.seen: list[dict[int, int]] = [{} for _ in subs]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> QosTraffic:
        self._thread.start()
        return self

    def _run(self) -> None:
        import time

        seq = 0
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            info = self.pub.paho.publish(self.topic, str(seq).encode(), 1)
            try:
                info.wait_for_publish(10)
                published = info.is_published()
            except (RuntimeError, ValueError):  # not connected: its node is gone
                published = False
            if published:
                self.acked.append(seq)
                self.acked_at[seq] = time.monotonic()
            else:
                self.unacked += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def _collect(self) -> None:
        import queue

        for i, sub in enumerate(self.subs):
            while True:
                try:
                    msg = sub.messages.get_nowait()
                except queue.Empty:
                    break
                if msg.topic == self.topic:
                    n = int(msg.payload)
                    self.seen[i][n] = self.seen[i].get(n, 0) + 1

    def missing(self) -> list[set[int]]:
        """Acknowledged seqs not received, per subscriber."""
        self._collect()
        return [{n for n in self.acked if n not in seen} for seen in self.seen]

    def lost(self) -> list[int]:
        """Acknowledged messages missing, per subscriber (after ``_collect``)."""
        self._collect()
        return [sum(1 for n in self.acked if n not in seen) for seen in self.seen]

    def finish(self, timeout: float = 30.0) -> Tally:
        import time

        self._stop.set()
        self._thread.join(15)
        deadline = time.monotonic() + timeout
        while any(self.lost()) and time.monotonic() < deadline:
            time.sleep(0.1)
        lost = self.lost()
        received = sum(sum(s.values()) for s in self.seen)
        dups = sum(sum(c - 1 for c in s.values()) for s in self.seen)
        return Tally(len(self.acked), self.unacked, lost, received, dups)


class Tally:
    def __init__(self, acked: int, unacked: int, lost: list[int], received: int,
                 duplicates: int) -> None:
        self.acked, self.unacked, self.lost = acked, unacked, lost
        self.received, self.duplicates = received, duplicates

    @property
    def duplicate_pct(self) -> float:
        return 100.0 * self.duplicates / max(self.received, 1)

    def __repr__(self) -> str:
        return (f"Tally(acked={self.acked}, unacked={self.unacked}, lost={self.lost}, "
                f"received={self.received}, duplicates={self.duplicates} "
                f"({self.duplicate_pct:.2f}%))")
