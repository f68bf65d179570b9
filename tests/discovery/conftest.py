"""Real servers on loopback for the discovery tests: etcd and dnsmasq, on free ports.

Each fixture starts its process in a temporary directory, waits for it by polling with a
deadline (never a fixed sleep), and kills it (by its own pid) when the test ends. A test
that needs a binary that is not installed is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

DEADLINE = 20.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out on 127.0.0.1 (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_tcp_udp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (a DNS server binds both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    """Run one async test body on a fresh event loop, with an overall deadline."""
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Await `check()` until it returns a truthy value; fail at the deadline with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value {last!r}")
        await asyncio.sleep(interval)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Etcd:
    """One etcd member on 127.0.0.1; `start()` may come later than the ports are known.

    With `tls` (a `TlsFiles`), clients must speak https and present a certificate signed by
    the test CA (`--client-cert-auth`).
    """

    def __init__(self, workdir: Path, tls: TlsFiles | None = None) -> None:
        self.workdir = workdir
        self.tls = tls
        self.client_port = free_port()
        self.peer_port = free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.client_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.workdir / "etcd.log", "ab")
        tls_args: list[str] = []
        if self.tls:
            tls_args = ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                        "--trusted-ca-file", self.tls.ca, "--client-cert-auth"]
        self.proc = subprocess.Popen(
            ["etcd", "--name", "test", "--data-dir", str(self.workdir / "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"test={peer}", "--initial-cluster-state", "new",
             "--log-level", "error", *tls_args],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        log.close()
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.tls.ca)
            context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        deadline = time.monotonic() + DEADLINE
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {(self.workdir / 'etcd.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1, context=context) as response:
                    if b"true" in response.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("etcd did not become healthy in time")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[Etcd]:
    """An etcd that is not started yet: call `.start()` (tests of "etcd down at start")."""
    if shutil.which("etcd") is None:
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    server = Etcd(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_tls_files(directory: Path) -> TlsFiles:
    """A test CA, a server certificate for 127.0.0.1 / etcd.test, a client certificate (openssl)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mqttmesh test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:etcd.test\n"
                                          "extendedKeyUsage=serverAuth,clientAuth\n")
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    return TlsFiles(*(str(directory / name) for name in
                      ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")))


@pytest.fixture
def etcd_tls(tmp_path: Path) -> Iterator[Etcd]:
    """A running etcd that speaks only https and wants a client certificate."""
    if shutil.which("etcd") is None:
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl binary not installed (needed to make test certificates)")
    certs = tmp_path / "certs"
    certs.mkdir()
    server = Etcd(tmp_path, make_tls_files(certs))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd(etcd_server: Etcd) -> Etcd:
    """A running etcd on free loopback ports."""
    etcd_server.start()
    return etcd_server


class Dnsmasq:
    """dnsmasq answering only from its command line and `hosts` file, on 127.0.0.1:port."""

    def __init__(self, workdir: Path, args: list[str]) -> None:
        self.port = free_tcp_udp_port()
        self.hosts = workdir / "hosts"
        self.hosts.write_text("")
        self.log = workdir / "dnsmasq.log"
        self.proc = subprocess.Popen(
            ["dnsmasq", "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=", "--user=root",
             f"--addn-hosts={self.hosts}", "--local-ttl=0", "--no-negcache", "--log-queries",
             f"--log-facility={self.log}", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def reload(self) -> None:
        """Re-read the `hosts` file (SIGHUP)."""
        assert self.proc.poll() is None
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self) -> None:
        _stop(self.proc)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Callable[..., Dnsmasq]]:
    """Factory: `dnsmasq(*args)` starts one with the given records and waits until it answers."""
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq binary not installed (Debian package dnsmasq-base)")
    started: list[Dnsmasq] = []

    def start(*args: str) -> Dnsmasq:
        server = Dnsmasq(tmp_path, list(args))
        started.append(server)
        _wait_dns(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def _wait_dns(server: Dnsmasq) -> None:
    import dns.exception
    import dns.message
    import dns.query
    deadline = time.monotonic() + DEADLINE
    query = dns.message.make_query("ready.invalid.", "A")
    while True:
        if server.proc.poll() is not None:
            stderr = server.proc.stderr.read().decode() if server.proc.stderr else ""
            raise RuntimeError(f"dnsmasq exited: {stderr}")
        try:
            dns.query.udp(query, "127.0.0.1", port=server.port, timeout=0.1)
            return
        except (dns.exception.Timeout, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("dnsmasq did not answer in time")
