"""Authentication and authorization end to end (built-in user store + acl.conf).

Configured through the ``authentication.*`` / ``authorization.*`` keys of docs/access.md.
"""

from __future__ import annotations

import pytest

from mqttmesh.access import UserStore
from tests.helpers import Client, ConnectFailed

ACL = """
{allow, {user, "alice"}, all, ["private/alice/#"]}.
{allow, all, all, ["open/#"]}.
{deny, all}.
"""


@pytest.fixture(scope="module")
def node(module_node_factory, tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    acl = base / "acl.conf"
    acl.write_text(ACL)
    factory_node = module_node_factory(
        start=False,
        config=(
            "authentication.enable = true\n"
            "authentication.allow_anonymous = false\n"
            "authentication.password_hash.iterations = 1000\n"
            f'authorization.sources.file.path = "{acl}"\n'
            "authorization.no_match = deny\n"
        ),
    )
    factory_node.data_dir.mkdir(parents=True, exist_ok=True)
    users = UserStore.open(factory_node.data_dir / "authn_users.json", iterations=1000)
    users.add_user("alice", "wonderland")
    users.add_user("bob", "builder")
    factory_node.start()
    return factory_node


def test_good_password_accepted(node, version):
    with Client(node.port, version=version, username="alice", password="wonderland") as c:
        c.connect()


def test_bad_password_refused(node, version):
    client = Client(node.port, version=version, username="alice", password="nope")
    with pytest.raises(ConnectFailed) as info:
        client.connect()
    client.close()
    # v5: 0x86 Bad User Name or Password; 3.1.1: return code 4 (paho reports it as 0x86)
    assert info.value.reason_code in (0x86, 0x87, 4, 5)


def test_anonymous_refused(node, version):
    client = Client(node.port, version=version)
    with pytest.raises(ConnectFailed) as info:
        client.connect()
    client.close()
    assert info.value.reason_code in (0x86, 0x87, 4, 5)


def test_acl_allows_and_denies_subscribe(node, version):
    with Client(node.port, version=version, username="bob", password="builder") as bob:
        bob.connect()
        assert bob.subscribe("open/x", qos=1) == [1]
        denied = bob.subscribe("private/alice/inbox", qos=1)
        assert denied == [0x87 if version == 5 else 0x80]


def test_acl_denied_publish_not_delivered(node, version):
    with Client(node.port, version=version, username="alice", password="wonderland") as alice, \
            Client(node.port, version=version, username="bob", password="builder") as bob:
        alice.connect()
        bob.connect()
        alice.subscribe("private/alice/#", qos=1)
        alice.subscribe("open/#", qos=1)
        bob.publish("private/alice/inbox", b"sneaky", qos=1)  # denied: acked, never delivered
        bob.publish("open/hello", b"fine", qos=1)
        assert alice.expect().payload == b"fine"
        alice.expect_none(0.3)
