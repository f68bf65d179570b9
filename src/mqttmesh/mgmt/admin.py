"""Dashboard / HTTP API credentials of one node: admin users, login tokens, API keys.

Admin users live in ``<data_dir>/dashboard_users.json`` (an ``access.UserStore``: salted
PBKDF2 hashes, never a password in the clear). At first start, when that file has no user,
``dashboard.default_username`` / ``default_password`` are hashed into it; later changes of
the config do not overwrite it (change the password through the API). API keys live in
``<data_dir>/api_keys.json``: name, key, a salted hash of the random secret, enable, expiry.
Tokens are random, kept in memory, valid on the node that issued them until they expire.
Both files are per node (not replicated).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from mqttmesh import access
from mqttmesh.errors import MqttMeshError

__all__ = ["AdminStore", "AdminError"]

SECRET_ITERATIONS = 1
"""API secrets are 32 random bytes: one salted SHA-256 round is enough (no dictionary)."""


class AdminError(MqttMeshError):
    """Bad credentials or a bad admin request (the message is for the user)."""


class AdminStore:
    """Admin users, tokens and API keys of one node.

    Args:
        data_dir: the node's data directory.
        default_username / default_password: the first admin (used once, at first start).
        token_ttl: seconds a login token stays valid.
    """

    def __init__(self, data_dir: str, default_username: str, default_password: str,
                 token_ttl: float = 3600.0, iterations: int = access.DEFAULT_ITERATIONS) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.users = access.UserStore.open(os.path.join(data_dir, "dashboard_users.json"),
                                           iterations=iterations)
        if len(self.users) == 0:
            self.users.add_user(default_username, default_password, is_superuser=True)
        self.token_ttl = token_ttl
        self._tokens: dict[str, tuple[str, float]] = {}
        self._keys_path = Path(data_dir) / "api_keys.json"
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = self._load_keys()

    # -- login -----------------------------------------------------------------------------
    def login(self, username: str, password: str) -> str:
        """A new token. Raises AdminError on a wrong user name or password."""
        if self.users.check(username, password.encode()) is None:
            raise AdminError("wrong username or password")
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        self._tokens[token] = (username, now + self.token_ttl)
        return token

    def logout(self, token: str) -> None:
        self._tokens.pop(token, None)

    def check_token(self, token: str) -> str | None:
        """The admin user of a valid token, or None."""
        entry = self._tokens.get(token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def change_password(self, username: str, old: str, new: str) -> None:
        if not new or len(new) < 4:
            raise AdminError("the new password must have at least 4 characters")
        if self.users.check(username, old.encode()) is None:
            raise AdminError("wrong old password")
        self.users.update_user(username, password=new)
        self._tokens = {t: v for t, v in self._tokens.items() if v[0] != username}

    # -- API keys --------------------------------------------------------------------------
    def _load_keys(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self._keys_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AdminError(f"{self._keys_path}: unreadable ({exc})") from None
        return {k["name"]: k for k in doc.get("keys", []) if isinstance(k, dict) and "name" in k}

    def _save_keys(self) -> None:
        tmp = self._keys_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": 1, "keys": list(self._keys.values())}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._keys_path)

    @staticmethod
    def _public(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: entry[k] for k in ("name", "api_key", "desc", "enable", "created_at",
                                      "expired_at") if k in entry}

    def create_key(self, name: str, desc: str = "", enable: bool = True,
                   expired_at: int | None = None) -> dict[str, Any]:
        """A new key; the answer holds ``api_secret``, shown this once."""
        with self._lock:
            if name in self._keys:
                raise AdminError(f"an API key named {name} already exists")
            key, secret = secrets.token_hex(8), secrets.token_urlsafe(24)
            entry = {"name": name, "api_key": key, "desc": desc, "enable": enable,
                     "created_at": int(time.time()), "expired_at": expired_at,
                     "secret_hash": access.hash_password(secret.encode(),
                                                         SECRET_ITERATIONS).to_json()}
            self._keys[name] = entry
            self._save_keys()
        return {**self._public(entry), "api_secret": secret}

    def list_keys(self) -> list[dict[str, Any]]:
        return [self._public(e) for e in sorted(self._keys.values(), key=lambda e: e["name"])]

    def get_key(self, name: str) -> dict[str, Any] | None:
        entry = self._keys.get(name)
        return self._public(entry) if entry is not None else None

    def delete_key(self, name: str) -> bool:
        with self._lock:
            if self._keys.pop(name, None) is None:
                return False
            self._save_keys()
        return True

    def check_key(self, key: str, secret: str) -> str | None:
        """The key's name when ``key:secret`` is valid, enabled and not expired, else None."""
        for entry in list(self._keys.values()):
            if entry["api_key"] != key:
                continue
            expired = entry.get("expired_at")
            if not entry.get("enable", True) or (expired and expired <= time.time()):
                return None
            stored = access.PasswordHash.from_json(entry["secret_hash"])
            return str(entry["name"]) if access.verify_password(secret.encode(), stored) else None
        return None
