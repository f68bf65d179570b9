"""Authentication: accept or refuse a CONNECT (EMQX ``authentication``, built-in database)."""

from __future__ import annotations

from dataclasses import dataclass

from mqttmesh.access.users import UserStore
from mqttmesh.protocol import Connect, ReasonCode

__all__ = ["AuthResult", "AuthnStats", "Authenticator"]


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The CONNECT decision.

    Attributes:
        reason_code: MQTT 5 CONNACK reason: 0x00 accepted, 0x86 bad user name or password,
            0x87 not authorized (anonymous refused). The broker maps it to a 3.1.1 return
            code with `mqttmesh.protocol.connack_return_code` (0x86 -> 4, 0x87 -> 5).
        is_superuser: the user bypasses authorization.
    """

    reason_code: int
    is_superuser: bool = False

    @property
    def ok(self) -> bool:
        """True if the connection is accepted."""
        return self.reason_code == ReasonCode.SUCCESS


ACCEPTED = AuthResult(ReasonCode.SUCCESS)
BAD_CREDENTIALS = AuthResult(ReasonCode.BAD_USER_NAME_OR_PASSWORD)
ANONYMOUS_REFUSED = AuthResult(ReasonCode.NOT_AUTHORIZED)


@dataclass(frozen=True, slots=True)
class AuthnStats:
    """Counters since start."""

    success: int
    anonymous: int
    failure: int


class Authenticator:
    """Checks user name and password of every CONNECT against a `UserStore`.

    Decision table (``enable`` true):

    ==========================================  =========================================
    CONNECT                                     result
    ==========================================  =========================================
    no user name (absent or empty)              ``allow_anonymous``: 0x00, else 0x87
    known user, right password                  0x00 (+ the user's ``is_superuser``)
    unknown user, wrong or missing password     0x86 Bad user name or password
    ==========================================  =========================================

    With ``enable`` false every CONNECT is accepted (EMQX with no authenticator).

    Args:
        users: the built-in store; None behaves as an empty store.
        allow_anonymous: accept clients that send no user name [true].
        enable: authentication on or off [true here; the config default is off].
    """

    def __init__(self, users: UserStore | None = None, *, allow_anonymous: bool = True,
                 enable: bool = True) -> None:
        self.users = users if users is not None else UserStore()
        self.allow_anonymous = allow_anonymous
        self.enable = enable
        self._success = self._anonymous = self._failure = 0

    def authenticate(self, client_id: str, username: str | None, password: bytes | None,
                     peer: str | None = None) -> AuthResult:
        """Decide one CONNECT.

        Args:
            client_id: as sent (may be empty before assignment); kept for logging/hooks.
            username: the CONNECT user name, None if absent.
            password: the CONNECT password, None if absent.
            peer: ``host:port`` of the client; unused by the built-in store.
        """
        if not self.enable:
            return ACCEPTED
        if not username:
            if self.allow_anonymous:
                self._anonymous += 1
                return ACCEPTED
            self._failure += 1
            return ANONYMOUS_REFUSED
        # Always pay for one hash check, so a missing password or an unknown user does not
        # answer faster than a wrong password (no user enumeration by timing).
        user = self.users.check(username, password if password is not None else b"")
        if user is None or password is None:
            self._failure += 1
            return BAD_CREDENTIALS
        self._success += 1
        return AuthResult(ReasonCode.SUCCESS, user.is_superuser)

    def authenticate_connect(self, connect: Connect, peer: str | None = None) -> AuthResult:
        """`authenticate` with the fields of a CONNECT packet."""
        return self.authenticate(connect.client_id, connect.username, connect.password, peer)

    def statistics(self) -> AuthnStats:
        """Decision counters."""
        return AuthnStats(self._success, self._anonymous, self._failure)
