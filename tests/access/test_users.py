"""UserStore and Authenticator: hashes on disk, salts, wrong passwords, persistence, anonymous."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mqttmesh.access import (
    Authenticator, PasswordHash, UserStore, UserStoreError, hash_password, verify_password,
)
from mqttmesh.protocol import Connect, ConnAckReturnCode, ReasonCode, connack_return_code

FAST = 1000  # PBKDF2 rounds in tests


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "authn_users.json"


@pytest.fixture
def store(path: Path) -> UserStore:
    return UserStore.open(path, iterations=FAST)


def test_missing_file_is_empty_store_and_not_created(path: Path, store: UserStore) -> None:
    assert len(store) == 0 and store.list_users() == []
    assert not path.exists()


def test_hash_not_plaintext_on_disk_and_file_private(path: Path, store: UserStore) -> None:
    store.add_user("alice", "s3cret-Pa55word")
    raw = path.read_bytes()
    assert b"s3cret-Pa55word" not in raw
    assert b"s3cret-Pa55word".hex().encode() not in raw
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(raw)
    entry = doc["users"][0]
    assert doc["version"] == 1
    assert entry["username"] == "alice" and entry["is_superuser"] is False
    assert entry["password_hash"]["algorithm"] == "pbkdf2_sha256"
    assert entry["password_hash"]["iterations"] == FAST
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_salt_differs_per_user_even_for_same_password(path: Path, store: UserStore) -> None:
    store.add_user("a", "same")
    store.add_user("b", "same")
    users = {u["username"]: u["password_hash"] for u in json.loads(path.read_text())["users"]}
    assert users["a"]["salt"] != users["b"]["salt"]
    assert users["a"]["hash"] != users["b"]["hash"]


def test_check_right_and_wrong_password(store: UserStore) -> None:
    store.add_user("alice", "pw")
    user = store.check("alice", b"pw")
    assert user is not None and user.username == "alice"
    assert store.check("alice", b"pw2") is None
    assert store.check("alice", b"") is None
    assert store.check("bob", b"pw") is None
    assert store.check("alice", b"pw") is user  # second time from the verified cache


def test_persistence_round_trip(path: Path, store: UserStore) -> None:
    store.add_user("alice", "pw1")
    store.add_user("root", b"\x00\xffbinary", is_superuser=True)
    again = UserStore.open(path, iterations=FAST)
    assert [(u.username, u.is_superuser) for u in again.list_users()] == [
        ("alice", False), ("root", True)]
    assert again.check("alice", b"pw1") is not None
    assert again.check("root", b"\x00\xffbinary") is not None
    assert again.snapshot() == store.snapshot()


def test_update_and_delete(path: Path, store: UserStore) -> None:
    store.add_user("alice", "old")
    assert store.check("alice", b"old") is not None
    store.update_user("alice", password="new")
    assert store.check("alice", b"old") is None  # the verified cache was dropped
    assert store.check("alice", b"new") is not None
    store.update_user("alice", is_superuser=True)
    assert store.check("alice", b"new").is_superuser  # type: ignore[union-attr]
    store.delete_user("alice")
    assert "alice" not in store and store.check("alice", b"new") is None
    assert UserStore.open(path).list_users() == []


def test_refusals(store: UserStore) -> None:
    store.add_user("alice", "pw")
    with pytest.raises(UserStoreError, match="already exists"):
        store.add_user("alice", "x")
    with pytest.raises(UserStoreError, match="no such user"):
        store.update_user("bob", password="x")
    with pytest.raises(UserStoreError, match="no such user"):
        store.delete_user("bob")
    for bad in ("", "a\x00b", 5):
        with pytest.raises(UserStoreError):
            store.add_user(bad, "x")  # type: ignore[arg-type]


def test_failed_write_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = UserStore(blocker / "authn_users.json", iterations=FAST)  # parent is a file
    with pytest.raises(UserStoreError, match="cannot write"):
        store.add_user("alice", "pw")
    assert "alice" not in store


@pytest.mark.parametrize("content", [
    "not json", "[]", '{"version": 2, "users": []}', '{"version": 1, "users": {}}',
    '{"version": 1, "users": [{"username": "a"}]}',
    '{"version": 1, "users": [{"username": "a", "password_hash": {"algorithm": "md5"}}]}',
])
def test_bad_file_names_the_path(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(UserStoreError, match="authn_users.json"):
        UserStore.open(path)


def test_replace_all_from_snapshot(store: UserStore) -> None:
    other = UserStore(iterations=FAST)
    other.add_user("x", "pw", is_superuser=True)
    store.add_user("y", "pw")
    store.replace_all(other.snapshot())
    assert [u.username for u in store.list_users()] == ["x"]
    assert store.check("x", b"pw") is not None
    with pytest.raises(UserStoreError):
        store.replace_all({"version": 1, "users": "nope"})
    assert [u.username for u in store.list_users()] == ["x"]


def test_password_hash_helpers() -> None:
    ph = hash_password(b"pw", iterations=FAST)
    assert verify_password(b"pw", ph) and not verify_password(b"pW", ph)
    assert PasswordHash.from_json(ph.to_json()) == ph
    assert hash_password(b"pw", FAST).salt != ph.salt


# -- Authenticator ----------------------------------------------------------------------------

@pytest.fixture
def authn(store: UserStore) -> Authenticator:
    store.add_user("alice", "pw")
    store.add_user("root", "rootpw", is_superuser=True)
    return Authenticator(store, allow_anonymous=True)


def test_good_password(authn: Authenticator) -> None:
    r = authn.authenticate("c1", "alice", b"pw", "127.0.0.1:5000")
    assert r.ok and r.reason_code == ReasonCode.SUCCESS and not r.is_superuser
    r = authn.authenticate("c2", "root", b"rootpw", "127.0.0.1:5000")
    assert r.ok and r.is_superuser


@pytest.mark.parametrize("username, password", [
    ("alice", b"wrong"), ("alice", None), ("alice", b""), ("nobody", b"pw"), ("nobody", None),
])
def test_bad_credentials_0x86(authn: Authenticator, username: str,
                              password: bytes | None) -> None:
    r = authn.authenticate("c", username, password, "1.2.3.4:1")
    assert not r.ok and r.reason_code == 0x86 and not r.is_superuser
    assert connack_return_code(r.reason_code) == ConnAckReturnCode.BAD_USER_NAME_OR_PASSWORD == 4


@pytest.mark.parametrize("username", [None, ""])
def test_anonymous_on_and_off(authn: Authenticator, username: str | None) -> None:
    assert authn.authenticate("c", username, None).ok
    assert authn.authenticate("c", username, b"ignored").ok
    authn.allow_anonymous = False
    r = authn.authenticate("c", username, None)
    assert r.reason_code == ReasonCode.NOT_AUTHORIZED == 0x87
    assert connack_return_code(r.reason_code) == 5
    assert authn.authenticate("c", "alice", b"pw").ok  # users still get in


def test_disabled_accepts_everyone(store: UserStore) -> None:
    authn = Authenticator(store, allow_anonymous=False, enable=False)
    assert authn.authenticate("c", "nobody", b"x").ok
    assert authn.authenticate("c", None, None).ok


def test_authenticate_connect_and_stats(authn: Authenticator) -> None:
    assert authn.authenticate_connect(Connect("c", 5, username="alice", password=b"pw")).ok
    assert not authn.authenticate_connect(Connect("c", 4, username="alice", password=b"x")).ok
    assert authn.authenticate_connect(Connect("c", 4)).ok
    s = authn.statistics()
    assert (s.success, s.failure, s.anonymous) == (1, 1, 1)


def test_no_store_means_no_users() -> None:
    authn = Authenticator(allow_anonymous=True)
    assert authn.authenticate("c", "alice", b"pw").reason_code == 0x86


def test_put_user_replicates_the_same_record(tmp_path: Path, store: UserStore) -> None:
    user = store.add_user("alice", "pw", is_superuser=True)
    replica = UserStore.open(tmp_path / "other" / "authn_users.json")
    replica.put_user(type(user).from_json(user.to_json()))  # what crosses the wire
    assert replica.snapshot() == store.snapshot()
    assert replica.check("alice", b"pw") is not None
    assert UserStore.open(tmp_path / "other" / "authn_users.json").get_user("alice") == user
