"""A small etcd v3 client over its JSON gateway (`/v3/...`), stdlib only, with failover.

Calls are blocking `http.client` requests; `EtcdClient.call` runs them in a thread so the
event loop never waits on the network. Several servers are tried in turn, starting with the
last one that answered. Keys and values cross the gateway base64-encoded; proto3 JSON leaves
out zero values (`succeeded: false`, `TTL: 0`), so readers default them.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import ssl
import urllib.parse
from typing import Any

from mqttmesh.discovery.base import EtcdTls
from mqttmesh.errors import DiscoveryError

__all__ = ["EtcdClient", "EtcdRequestError", "b64", "unb64", "prefix_end"]


class EtcdRequestError(DiscoveryError):
    """etcd answered, with an error (e.g. `requested lease not found`)."""

    def __init__(self, message: str, code: int | None) -> None:
        self.code = code
        super().__init__(message)


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: bytes) -> bytes:
    """The `range_end` covering every key that starts with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


class _SniHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS with the TLS server name taken from config instead of the URL's host."""

    def __init__(self, host: str, port: int | None, *, sni: str | None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._sni = sni

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        self.sock = context.wrap_socket(sock, server_hostname=self._sni)


def make_tls_context(tls: EtcdTls) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.cacertfile or None)
    if tls.verify != "verify_peer":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif tls.server_name_indication == "disable":
        context.check_hostname = False
    if tls.certfile:
        context.load_cert_chain(tls.certfile, tls.keyfile or None)
    return context


class EtcdClient:
    """POSTs JSON to `/v3/<path>` on the first etcd server that answers."""

    def __init__(self, servers: tuple[str, ...], tls: EtcdTls | None, timeout: float) -> None:
        if not servers:
            raise DiscoveryError("cluster.etcd.server lists no server")
        self._servers = [urllib.parse.urlsplit(server.strip()) for server in servers if server.strip()]
        for url in self._servers:
            if url.scheme not in ("http", "https") or not url.hostname:
                raise DiscoveryError(f"cluster.etcd.server {url.geturl()!r} is not an http(s) URL")
        self._tls = tls
        self._context = make_tls_context(tls) if tls is not None else None
        self._timeout = timeout
        self._current = 0

    @property
    def servers(self) -> str:
        return ", ".join(url.geturl() for url in self._servers)

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `/v3/{path}`; raises DiscoveryError when no server answers."""
        return await asyncio.to_thread(self.call_blocking, path, body)

    def call_blocking(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        failures: list[str] = []
        count = len(self._servers)
        for step in range(count):
            index = (self._current + step) % count
            url = self._servers[index]
            try:
                result = self._post(url, path, body)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"{url.geturl()}: {_why(exc)}")
                continue
            self._current = index
            return result
        raise DiscoveryError(f"etcd unreachable ({'; '.join(failures)})")

    def _post(self, url: urllib.parse.SplitResult, path: str, body: dict[str, Any]) -> dict[str, Any]:
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            context = self._context or ssl.create_default_context()
            sni = url.hostname
            if self._tls is not None and self._tls.server_name_indication:
                sni = None if self._tls.server_name_indication == "disable" else self._tls.server_name_indication
            conn = _SniHTTPSConnection(url.hostname or "", url.port, sni=sni, timeout=self._timeout, context=context)
        else:
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=self._timeout)
        try:
            base = url.path.rstrip("/")
            conn.request("POST", f"{base}/v3/{path}", body=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        data = json.loads(raw.decode() or "{}")
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if "error" in data or response.status >= 400:
            message = data.get("message") or data.get("error") or f"HTTP {response.status}"
            raise EtcdRequestError(f"etcd refused {path}: {message}", data.get("code"))
        # lease/keepalive is a stream; one request gives one `{"result": ...}` line.
        result = data.get("result", data)
        return dict(result)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
