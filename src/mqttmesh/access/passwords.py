"""Salted password hashes: PBKDF2-HMAC-SHA256, per-user random salt, iterations kept per hash."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from mqttmesh.access.errors import UserStoreError

__all__ = ["PasswordHash", "hash_password", "verify_password", "DEFAULT_ITERATIONS"]

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 20_000
"""PBKDF2 rounds for new hashes. CONNECT is checked on the event loop, so this is a trade:
~12 ms per check on a 2020s core (mosquitto_passwd uses 101 rounds of PBKDF2-SHA512, EMQX's
built-in database defaults to one salted SHA-256). Stored per hash, so it can be raised
later without invalidating existing users."""
SALT_BYTES = 16
_MIN_ITERATIONS, _MAX_ITERATIONS = 1, 10_000_000


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """What is stored instead of a password."""

    algorithm: str
    iterations: int
    salt: bytes
    digest: bytes

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (hex salt and digest)."""
        return {"algorithm": self.algorithm, "iterations": self.iterations,
                "salt": self.salt.hex(), "hash": self.digest.hex()}

    @classmethod
    def from_json(cls, obj: object) -> PasswordHash:
        """Inverse of `to_json`.

        Raises:
            UserStoreError: a missing or malformed field.
        """
        if not isinstance(obj, dict):
            raise UserStoreError("password_hash must be an object")
        algorithm, iterations = obj.get("algorithm"), obj.get("iterations")
        if algorithm != ALGORITHM:
            raise UserStoreError(f"unsupported password hash algorithm {algorithm!r}")
        if (not isinstance(iterations, int) or isinstance(iterations, bool)
                or not _MIN_ITERATIONS <= iterations <= _MAX_ITERATIONS):
            raise UserStoreError(f"bad iteration count {iterations!r}")
        try:
            salt = bytes.fromhex(str(obj["salt"]))
            digest = bytes.fromhex(str(obj["hash"]))
        except (KeyError, ValueError) as exc:
            raise UserStoreError(f"bad salt or hash: {exc}") from None
        if not salt or len(digest) != hashlib.sha256().digest_size:
            raise UserStoreError("bad salt or hash length")
        return cls(algorithm, iterations, salt, digest)


def hash_password(password: bytes, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> PasswordHash:
    """Hash a password with a fresh random salt (or the given one, for tests)."""
    if not _MIN_ITERATIONS <= iterations <= _MAX_ITERATIONS:
        raise UserStoreError(f"bad iteration count {iterations!r}")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    return PasswordHash(ALGORITHM, iterations, salt, digest)


def verify_password(password: bytes, stored: PasswordHash) -> bool:
    """Constant-time check of a password against a stored hash."""
    digest = hashlib.pbkdf2_hmac("sha256", password, stored.salt, stored.iterations)
    return hmac.compare_digest(digest, stored.digest)
