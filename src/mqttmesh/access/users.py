"""The built-in user store (EMQX "built-in database" authenticator): users, hashes, JSON file.

The only module of `mqttmesh.access` that touches the disk: `UserStore.open(path)` loads the
file (a missing file is an empty store) and every change is written back atomically (temp
file in the same directory, fsync, ``os.replace``, mode 0600) before it takes effect, so a
crash leaves either the old or the new file. Passwords never reach the disk, only
`PasswordHash`es. Thread-safe: `check` may run in a worker thread while the event loop
changes users.

File format (``<data_dir>/authn_users.json``)::

    {"version": 1, "users": [{"username": "u", "is_superuser": false,
      "password_hash": {"algorithm": "pbkdf2_sha256", "iterations": 20000,
                        "salt": "<hex>", "hash": "<hex>"}}]}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqttmesh.access.errors import UserStoreError
from mqttmesh.access.passwords import (
    DEFAULT_ITERATIONS, PasswordHash, hash_password, verify_password,
)

__all__ = ["User", "UserStore", "FILE_VERSION"]

FILE_VERSION = 1
_VERIFIED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class User:
    """One user as stored (no password, only its hash)."""

    username: str
    password_hash: PasswordHash
    is_superuser: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"username": self.username, "is_superuser": self.is_superuser,
                "password_hash": self.password_hash.to_json()}

    @classmethod
    def from_json(cls, obj: object) -> User:
        """Inverse of `to_json`.

        Raises:
            UserStoreError: a missing or malformed field.
        """
        if not isinstance(obj, dict):
            raise UserStoreError("each user must be an object")
        name = _validate_username(obj.get("username"))
        superuser = obj.get("is_superuser", False)
        if not isinstance(superuser, bool):
            raise UserStoreError(f"is_superuser of {name!r} must be true or false")
        return cls(name, PasswordHash.from_json(obj.get("password_hash")), superuser)


def _validate_username(username: object) -> str:
    if not isinstance(username, str) or not username:
        raise UserStoreError("username must be a non-empty string")
    if "\x00" in username or len(username.encode("utf-8", "surrogatepass")) > 65535:
        raise UserStoreError("username must be valid MQTT UTF-8 (no U+0000, <= 65535 bytes)")
    try:
        username.encode("utf-8")
    except UnicodeEncodeError:
        raise UserStoreError("username must be valid UTF-8") from None
    return username


def _password_bytes(password: str | bytes) -> bytes:
    if isinstance(password, str):
        return password.encode("utf-8")
    if isinstance(password, (bytes, bytearray)):
        return bytes(password)
    raise UserStoreError("password must be str or bytes")


class UserStore:
    """Users by name, optionally persisted to a JSON file.

    Args:
        path: the JSON file, or None for a memory-only store (tests, replicas).
        iterations: PBKDF2 rounds for hashes created from now on.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 iterations: int = DEFAULT_ITERATIONS) -> None:
        self.path = Path(path) if path is not None else None
        self.iterations = iterations
        self._users: dict[str, User] = {}
        self._lock = threading.Lock()
        # username -> HMAC(process secret, password) of the last good password: reconnects
        # cost one HMAC instead of a PBKDF2; dropped whenever the user changes.
        self._secret = os.urandom(32)
        self._verified: OrderedDict[str, bytes] = OrderedDict()
        self._dummy: PasswordHash | None = None

    # -- loading and saving -------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *,
             iterations: int = DEFAULT_ITERATIONS) -> UserStore:
        """Load the store from ``path``; a missing file gives an empty store (created on the
        first change).

        Raises:
            UserStoreError: unreadable or malformed file (the message names the path).
        """
        store = cls(path, iterations=iterations)
        store.reload()
        return store

    def reload(self) -> None:
        """Re-read the file (after an outside change). Memory-only stores: no-op.

        Raises:
            UserStoreError: unreadable or malformed file; the store is left unchanged.
        """
        if self.path is None:
            return
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            users: dict[str, User] = {}
        except (OSError, UnicodeDecodeError) as exc:
            raise UserStoreError(f"cannot read user file {self.path}: {exc}") from None
        else:
            try:
                users = self._parse(json.loads(raw))
            except (ValueError, UserStoreError) as exc:
                raise UserStoreError(f"bad user file {self.path}: {exc}") from None
        with self._lock:
            self._users = users
            self._verified.clear()

    @staticmethod
    def _parse(doc: object) -> dict[str, User]:
        if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION:
            raise UserStoreError(f"expected an object with \"version\": {FILE_VERSION}")
        entries = doc.get("users")
        if not isinstance(entries, list):
            raise UserStoreError("\"users\" must be a list")
        users: dict[str, User] = {}
        for e in entries:
            user = User.from_json(e)
            if user.username in users:
                raise UserStoreError(f"duplicate user {user.username!r}")
            users[user.username] = user
        return users

    def snapshot(self) -> dict[str, Any]:
        """The whole store in file format (for replication to other nodes, backups)."""
        with self._lock:
            return {"version": FILE_VERSION,
                    "users": [u.to_json() for u in sorted(self._users.values(),
                                                          key=lambda u: u.username)]}

    def replace_all(self, snapshot: object) -> None:
        """Replace every user with a `snapshot` (e.g. from the cluster); saved to the file.

        Raises:
            UserStoreError: malformed snapshot; nothing changes.
        """
        users = self._parse(snapshot)
        with self._lock:
            self._commit(users)

    def _commit(self, users: dict[str, User]) -> None:
        """Persist ``users`` then make them current. Caller holds the lock."""
        if self.path is not None:
            doc = {"version": FILE_VERSION,
                   "users": [u.to_json() for u in sorted(users.values(),
                                                         key=lambda u: u.username)]}
            _atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
        self._users = users
        self._verified.clear()

    # -- operations ---------------------------------------------------------------------------

    def add_user(self, username: str, password: str | bytes, is_superuser: bool = False) -> User:
        """Create a user.

        Raises:
            UserStoreError: the user exists, or a bad name/password, or the file cannot be
                written (then nothing changes).
        """
        name = _validate_username(username)
        ph = hash_password(_password_bytes(password), self.iterations)
        with self._lock:
            if name in self._users:
                raise UserStoreError(f"user {name!r} already exists")
            user = User(name, ph, bool(is_superuser))
            self._commit({**self._users, name: user})
        return user

    def update_user(self, username: str, password: str | bytes | None = None,
                    is_superuser: bool | None = None) -> User:
        """Change a user's password and/or superuser flag (None = keep).

        Raises:
            UserStoreError: unknown user, bad input, or the file cannot be written.
        """
        ph = hash_password(_password_bytes(password), self.iterations) \
            if password is not None else None
        with self._lock:
            old = self._users.get(username)
            if old is None:
                raise UserStoreError(f"no such user {username!r}")
            user = User(username, ph or old.password_hash,
                        old.is_superuser if is_superuser is None else bool(is_superuser))
            self._commit({**self._users, username: user})
        return user

    def put_user(self, user: User) -> None:
        """Store an already-hashed user as is, creating or replacing it: how a change made on
        one node is applied on the others (only the hash crosses the wire, and every node
        ends up with the same record).

        Raises:
            UserStoreError: the file cannot be written (then nothing changes).
        """
        _validate_username(user.username)
        with self._lock:
            self._commit({**self._users, user.username: user})

    def delete_user(self, username: str) -> None:
        """Remove a user.

        Raises:
            UserStoreError: unknown user, or the file cannot be written.
        """
        with self._lock:
            if username not in self._users:
                raise UserStoreError(f"no such user {username!r}")
            users = dict(self._users)
            del users[username]
            self._commit(users)

    def get_user(self, username: str) -> User | None:
        """The user, or None."""
        return self._users.get(username)

    def list_users(self) -> list[User]:
        """Every user, sorted by name."""
        return sorted(self._users.values(), key=lambda u: u.username)

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, username: object) -> bool:
        return username in self._users

    def check(self, username: str, password: bytes) -> User | None:
        """The user if the password is right, else None. Constant-time comparisons; an
        unknown user costs the same hash as a known one (no user enumeration by timing)."""
        user = self._users.get(username)
        mac = hmac.new(self._secret, password, hashlib.sha256).digest()
        if user is not None:
            with self._lock:
                known = self._verified.get(username)
            if known is not None and hmac.compare_digest(known, mac) \
                    and self._users.get(username) is user:
                return user
            if verify_password(password, user.password_hash):
                with self._lock:
                    if self._users.get(username) is user:  # not changed meanwhile
                        self._verified[username] = mac
                        self._verified.move_to_end(username)
                        if len(self._verified) > _VERIFIED_MAX:
                            self._verified.popitem(last=False)
                return user
            return None
        if self._dummy is None:
            self._dummy = hash_password(b"", self.iterations)
        verify_password(password, self._dummy)
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never a mix."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise UserStoreError(f"cannot write user file {path}: {exc}") from None
