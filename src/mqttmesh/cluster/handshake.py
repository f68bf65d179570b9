"""Cookie challenge-response that opens every link between nodes (and from ctl).

Theory of operation
-------------------
Four messages, each in its own frame (``wire.codec``; before authentication the reader
accepts frames of at most ``PRE_AUTH_MAX_FRAME`` bytes)::

    client                                             server
    HELLO     [100, versions, kind, name, cluster, role, client_nonce]  ->
           <- CHALLENGE [101, version, name, cluster, server_nonce]
    RESPONSE  [102, HMAC(cookie, "client" | transcript)]                ->
           <- WELCOME   [103, HMAC(cookie, "server" | transcript)]
    either side may instead send REFUSE [104, reason] and close.

``transcript`` is msgpack of (version, kind, client name, server name, cluster, client nonce,
server nonce). The cookie never crosses the wire, only MACs over fresh nonces from both
sides: a recorded RESPONSE is useless on a new connection (new server nonce), a recorded
WELCOME is useless to an impostor server (new client nonce), and the two directions use
different labels so a MAC cannot be reflected. The server proves itself only after the
client has, so an unauthenticated caller never obtains a MAC from us.

Version negotiation: HELLO lists the wire versions the client speaks; the server picks the
highest one it also speaks (CHALLENGE carries it) or refuses. ``kind`` says who connects:
``"node"`` (a cluster member or a node asking to join: its cluster name must match ours) or
``"ctl"`` (the command line tool of this node, which holds the same cookie).

State machine: ``START -> SENT_HELLO -> SENT_RESPONSE -> DONE`` on the client,
``START -> SENT_CHALLENGE -> DONE`` on the server; any error -> ``FAILED``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import msgpack

from mqttmesh.errors import HandshakeError

__all__ = [
    "ClientHandshake",
    "ServerHandshake",
    "PeerInfo",
    "HandshakeError",
    "HELLO", "CHALLENGE", "RESPONSE", "WELCOME", "REFUSE",
    "KIND_NODE", "KIND_CTL",
    "SUPPORTED_VERSIONS",
]

HELLO, CHALLENGE, RESPONSE, WELCOME, REFUSE = 100, 101, 102, 103, 104
KIND_NODE = "node"
KIND_CTL = "ctl"
SUPPORTED_VERSIONS: tuple[int, ...] = (1, 2)
NONCE_SIZE = 16


class State(enum.Enum):
    START = "start"
    SENT_HELLO = "sent_hello"
    SENT_CHALLENGE = "sent_challenge"
    SENT_RESPONSE = "sent_response"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who is on the other side, once authenticated."""

    kind: str       # "node" | "ctl"
    name: str
    cluster: str
    role: str
    version: int    # negotiated wire version


def _mac(cookie: bytes, label: bytes, transcript: bytes) -> bytes:
    return hmac.new(cookie, label + transcript, hashlib.sha256).digest()


def _transcript(version: int, kind: str, client: str, server: str, cluster: str,
                client_nonce: bytes, server_nonce: bytes) -> bytes:
    packed: bytes = msgpack.packb(
        [version, kind, client, server, cluster, client_nonce, server_nonce], use_bin_type=True)
    return packed


def _expect(msg: Any, kind: int, fields: int) -> list[Any]:
    if not isinstance(msg, list) or not msg or msg[0] not in (kind, REFUSE):
        raise HandshakeError("unexpected message during the handshake")
    if msg[0] == REFUSE:
        reason = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else "no reason"
        raise HandshakeError(f"refused by peer: {reason[:200]}")
    if len(msg) != fields + 1:
        raise HandshakeError("malformed handshake message")
    return msg


class ClientHandshake:
    """The connecting side.

    Args:
        cookie: the shared secret.
        kind: ``KIND_NODE`` or ``KIND_CTL``.
        name: our node name (for ctl: the node it is talking to, informational).
        cluster: our cluster name.
        role: ``core`` | ``replicant`` (nodes), ``ctl``.
        versions: wire versions we speak.
        nonce: for tests; a fresh random one otherwise.
    """

    def __init__(self, cookie: str, kind: str, name: str, cluster: str, role: str,
                 versions: tuple[int, ...] = SUPPORTED_VERSIONS,
                 nonce: bytes | None = None) -> None:
        self._cookie = cookie.encode()
        self.kind = kind
        self.name = name
        self.cluster = cluster
        self.role = role
        self.versions = tuple(versions)
        self._nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
        self.state = State.START
        self.peer: PeerInfo | None = None
        self._transcript = b""

    def initiate(self) -> list[Any]:
        """The HELLO message to send first."""
        assert self.state is State.START
        self.state = State.SENT_HELLO
        return [HELLO, list(self.versions), self.kind, self.name, self.cluster, self.role,
                self._nonce]

    def receive(self, msg: Any) -> list[Any] | None:
        """Handle the server's message; returns the message to send, or None when done.

        Raises:
            HandshakeError: refused, wrong cookie on the other side, malformed message.
        """
        try:
            return self._receive(msg)
        except HandshakeError:
            self.state = State.FAILED
            raise

    def _receive(self, msg: Any) -> list[Any] | None:
        if self.state is State.SENT_HELLO:
            _, version, name, cluster, nonce = _expect(msg, CHALLENGE, 4)
            if version not in self.versions:
                raise HandshakeError(f"peer chose wire version {version!r} we do not speak")
            if not (isinstance(name, str) and isinstance(cluster, str)
                    and isinstance(nonce, bytes) and len(nonce) == NONCE_SIZE):
                raise HandshakeError("malformed handshake message")
            self._transcript = _transcript(version, self.kind, self.name, name, cluster,
                                           self._nonce, nonce)
            self.peer = PeerInfo(KIND_NODE, name, cluster, "core", version)
            self.state = State.SENT_RESPONSE
            return [RESPONSE, _mac(self._cookie, b"client", self._transcript)]
        if self.state is State.SENT_RESPONSE:
            _, mac = _expect(msg, WELCOME, 1)
            if not isinstance(mac, bytes) or not hmac.compare_digest(
                    mac, _mac(self._cookie, b"server", self._transcript)):
                raise HandshakeError("wrong cookie: the peer could not prove it knows it")
            self.state = State.DONE
            return None
        raise HandshakeError(f"handshake message in state {self.state.value}")

    @property
    def done(self) -> bool:
        return self.state is State.DONE


class ServerHandshake:
    """The accepting side.

    Args:
        cookie: the shared secret.
        name: our node name.
        cluster: our cluster name (a node of another cluster is refused).
        versions: wire versions we speak.
        nonce: for tests; a fresh random one otherwise.

    After a ``HandshakeError`` from ``receive``, ``refusal`` holds the REFUSE message to send
    before closing (None when nothing should be sent).
    """

    def __init__(self, cookie: str, name: str, cluster: str,
                 versions: tuple[int, ...] = SUPPORTED_VERSIONS,
                 nonce: bytes | None = None) -> None:
        self._cookie = cookie.encode()
        self.name = name
        self.cluster = cluster
        self.versions = tuple(versions)
        self._nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
        self.state = State.START
        self.peer: PeerInfo | None = None
        self.refusal: list[Any] | None = None
        self._claimed: PeerInfo | None = None
        self._transcript = b""

    @property
    def claimed(self) -> PeerInfo | None:
        """What the peer said it is in HELLO (not yet proven): for logs."""
        return self._claimed

    def receive(self, msg: Any) -> list[Any]:
        """Handle the client's message; returns the message to send.

        Raises:
            HandshakeError: one-line reason ("wrong cookie", ...); see ``refusal``.
        """
        try:
            return self._receive(msg)
        except HandshakeError as exc:
            self.state = State.FAILED
            if self.refusal is None and not str(exc).startswith("refused by peer"):
                self.refusal = [REFUSE, str(exc)]
            raise

    def _receive(self, msg: Any) -> list[Any]:
        if self.state is State.START:
            _, versions, kind, name, cluster, role, nonce = _expect(msg, HELLO, 6)
            if not (isinstance(versions, list) and isinstance(kind, str)
                    and isinstance(name, str) and isinstance(cluster, str)
                    and isinstance(role, str) and isinstance(nonce, bytes)
                    and len(nonce) == NONCE_SIZE and len(name) <= 255):
                raise HandshakeError("malformed handshake message")
            common = [v for v in versions if isinstance(v, int) and v in self.versions]
            if not common:
                raise HandshakeError(f"no common wire version (peer speaks {versions[:8]!r}, "
                                     f"we speak {list(self.versions)!r})")
            if kind not in (KIND_NODE, KIND_CTL):
                raise HandshakeError(f"unknown peer kind {kind[:20]!r}")
            if kind == KIND_NODE and cluster != self.cluster:
                raise HandshakeError(f"cluster name mismatch: ours is {self.cluster!r}, "
                                     f"the peer's is {cluster[:60]!r}")
            version = max(common)
            self._claimed = PeerInfo(kind, name, cluster, role, version)
            self._transcript = _transcript(version, kind, name, self.name, self.cluster,
                                           nonce, self._nonce)
            self.state = State.SENT_CHALLENGE
            return [CHALLENGE, version, self.name, self.cluster, self._nonce]
        if self.state is State.SENT_CHALLENGE:
            _, mac = _expect(msg, RESPONSE, 1)
            if not isinstance(mac, bytes) or not hmac.compare_digest(
                    mac, _mac(self._cookie, b"client", self._transcript)):
                raise HandshakeError("wrong cookie")
            self.peer = self._claimed
            self.state = State.DONE
            return [WELCOME, _mac(self._cookie, b"server", self._transcript)]
        raise HandshakeError(f"handshake message in state {self.state.value}")

    @property
    def done(self) -> bool:
        return self.state is State.DONE
