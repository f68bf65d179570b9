"""Signed multicast announcements: encode, verify, and refuse replays (pure, no I/O).

Theory of operation. A node announces `{node, cluster, ts, nonce}` as JSON, prefixed with
a magic and followed by HMAC-SHA256 over both, keyed with the node cookie. A receiver
accepts an announcement only if the MAC matches its own cookie (so a host without the
cookie cannot inject members), the timestamp is within `window` seconds of its clock, and
the nonce was not seen within that window (so a captured announcement cannot be replayed
later, nor repeated now). Time is an argument: the caller passes wall-clock seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

__all__ = ["MAGIC", "Announcement", "AnnouncementRejected", "ReplayGuard", "encode_announcement", "decode_announcement"]

MAGIC = b"MQMD1"
_MAC_LEN = 32
_MAX_LEN = 1400


@dataclass(frozen=True, slots=True)
class Announcement:
    node: str
    cluster: str
    ts: float
    nonce: str


class AnnouncementRejected(Exception):
    """An announcement that must not be believed; `reason` says why, for the log."""

    def __init__(self, reason: str, *, foreign: bool = False) -> None:
        self.reason = reason
        self.foreign = foreign      # not ours at all (another protocol on the port): say nothing
        super().__init__(reason)


def _key(cookie: str) -> bytes:
    return b"mqttmesh mcast discovery\0" + cookie.encode()


def encode_announcement(node: str, cluster: str, cookie: str, now: float, nonce: str) -> bytes:
    """The datagram announcing `node` of `cluster` at wall-clock time `now`."""
    body = json.dumps({"node": node, "cluster": cluster, "ts": now, "nonce": nonce},
                      separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(_key(cookie), MAGIC + body, hashlib.sha256).digest()
    return MAGIC + body + mac


class ReplayGuard:
    """Remembers the nonces of accepted announcements for `window` seconds."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self._seen: dict[str, float] = {}

    def check(self, ts: float, nonce: str, now: float) -> None:
        if abs(now - ts) > self.window:
            raise AnnouncementRejected(
                f"its timestamp is {now - ts:+.0f}s off this node's clock (replayed, or clocks differ by more than {self.window:g}s)")
        if nonce in self._seen:
            raise AnnouncementRejected("it is a replay of an announcement already received")
        self._prune(now)
        self._seen[nonce] = ts

    def _prune(self, now: float) -> None:
        horizon = now - 2 * self.window
        if len(self._seen) > 256:
            self._seen = {n: t for n, t in self._seen.items() if t >= horizon}


def decode_announcement(data: bytes, cookie: str, now: float, guard: ReplayGuard) -> Announcement:
    """Verify and parse a datagram.

    Raises:
        AnnouncementRejected: not ours, bad MAC (another cookie), stale, or a replay.
    """
    if not data.startswith(MAGIC) or len(data) > _MAX_LEN or len(data) < len(MAGIC) + _MAC_LEN + 2:
        raise AnnouncementRejected("not a mqttmesh announcement", foreign=True)
    body, mac = data[len(MAGIC):-_MAC_LEN], data[-_MAC_LEN:]
    expected = hmac.new(_key(cookie), MAGIC + body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise AnnouncementRejected("its signature does not match: it was made with a different cookie, or forged")
    try:
        fields = json.loads(body)
        announcement = Announcement(str(fields["node"]), str(fields["cluster"]), float(fields["ts"]), str(fields["nonce"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise AnnouncementRejected(f"it is malformed ({exc})") from exc
    guard.check(announcement.ts, announcement.nonce, now)
    return announcement
