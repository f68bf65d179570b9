"""Authorization: may this client publish to / subscribe to this topic? (EMQX ``authorization``)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from mqttmesh.access.acl import Acl, Action, ClientInfo, Permission

__all__ = ["Authorizer", "AuthzCache", "AuthzStats", "DenyAction", "NoMatch", "peer_host"]


class NoMatch(Enum):
    """``authorization.no_match``: the decision when no rule matches."""

    ALLOW = "allow"
    DENY = "deny"


class DenyAction(Enum):
    """``authorization.deny_action``: what the broker does after a denial."""

    IGNORE = "ignore"          # PUBACK/PUBREC 0x87 or drop (QoS 0); SUBACK 0x87 / 0x80
    DISCONNECT = "disconnect"  # v5 DISCONNECT 0x87, then close; 3.1.1: close


@dataclass(frozen=True, slots=True)
class AuthzStats:
    """Counters since start (or the last `Authorizer.reload`, for nothing: they keep going)."""

    allow: int
    deny: int
    no_match: int
    superuser: int
    cache_hits: int


class AuthzCache:
    """A bounded LRU of decisions for ONE connection (EMQX ``authorization.cache``).

    Create one per connection with `Authorizer.new_cache` and pass it to every
    `Authorizer.authorize` call of that connection. Reloading the ACL invalidates it.
    Not thread-safe (a connection's packets are handled one at a time).
    """

    __slots__ = ("max_size", "_entries", "_generation")

    def __init__(self, max_size: int = 32) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[tuple[Action, str, int, bool], bool] = OrderedDict()
        self._generation = -1

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, generation: int, key: tuple[Action, str, int, bool]) -> bool | None:
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation
            return None
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def _put(self, key: tuple[Action, str, int, bool], allowed: bool) -> None:
        if self.max_size <= 0:
            return
        self._entries[key] = allowed
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)


class Authorizer:
    """Decides PUBLISH and SUBSCRIBE requests: superuser bypass, ACL rules, then ``no_match``.

    Args:
        acl: the compiled ACL file (`load_acl`), or None for no file source (then every
            request of a non-superuser gets ``no_match``).
        no_match: decision when no rule matches [allow].
        deny_action: what the broker should do on a denial [ignore]; the authorizer only
            reports it through `deny_action`, the broker acts.
        enable: False = authorization off, everything is allowed.
        cache_max_size: size of each `AuthzCache` made by `new_cache` (0 disables).
    """

    def __init__(self, acl: Acl | None = None, *, no_match: NoMatch | str = NoMatch.ALLOW,
                 deny_action: DenyAction | str = DenyAction.IGNORE, enable: bool = True,
                 cache_max_size: int = 32) -> None:
        self.acl = acl if acl is not None else Acl()
        self.no_match = NoMatch(no_match)
        self.deny_action = DenyAction(deny_action)
        self.enable = enable
        self.cache_max_size = cache_max_size
        self._generation = 0
        self._allow = self._deny = self._no_match = self._superuser = self._hits = 0

    def reload(self, acl: Acl | None) -> None:
        """Swap in a new rule set (e.g. after the file changed); every cache is invalidated."""
        self.acl = acl if acl is not None else Acl()
        self._generation += 1

    def new_cache(self) -> AuthzCache:
        """A fresh per-connection decision cache."""
        return AuthzCache(self.cache_max_size)

    def authorize(self, client: ClientInfo, action: Action | str, topic: str, qos: int = 0,
                  retain: bool = False, cache: AuthzCache | None = None) -> bool:
        """True if the client may do it.

        Args:
            client: who asks (superusers are always allowed).
            action: `Action.PUBLISH` / `Action.SUBSCRIBE` (or "publish" / "subscribe").
            topic: PUBLISH topic name, or one SUBSCRIBE topic filter (may be ``$share/G/F``;
                validated by the caller).
            qos: the PUBLISH QoS, or the QoS requested for the subscription.
            retain: the PUBLISH retain flag.
            cache: this connection's `AuthzCache`, if any.
        """
        if not self.enable:
            return True
        if client.is_superuser:
            self._superuser += 1
            return True
        act = action if isinstance(action, Action) else Action(action)
        key = (act, topic, qos, retain)
        if cache is not None:
            hit = cache._get(self._generation, key)
            if hit is not None:
                self._hits += 1
                return hit
        perm = self.acl.check(client, act, topic, qos, retain)
        if perm is None:
            self._no_match += 1
            allowed = self.no_match is NoMatch.ALLOW
        else:
            allowed = perm is Permission.ALLOW
        if allowed:
            self._allow += 1
        else:
            self._deny += 1
        if cache is not None:
            cache._put(key, allowed)
        return allowed

    def statistics(self) -> AuthzStats:
        """Decision counters."""
        return AuthzStats(self._allow, self._deny, self._no_match, self._superuser, self._hits)


def peer_host(peer: str | None) -> str | None:
    """The IP address part of a runtime peer string: ``"1.2.3.4:5"`` -> ``"1.2.3.4"``,
    ``"[::1]:5"`` -> ``"::1"``; a bare address is returned as is; None/"" -> None."""
    if not peer:
        return None
    if peer.startswith("["):
        end = peer.find("]")
        return peer[1:end] if end > 0 else None
    if peer.count(":") == 1:
        return peer.split(":", 1)[0]
    return peer
