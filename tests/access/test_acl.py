"""ACL parser and rule semantics on EMQX acl.conf syntax.

EMQX's default file is quoted from emqx/emqx ``apps/emqx_auth/etc/acl.conf`` (EMQX 5.x) and
the syntax from the EMQX docs "Use ACL File"
(https://docs.emqx.com/en/emqx/latest/access-control/authz/file.html).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttmesh.access import (
    Acl, AclParseError, Action, Authorizer, ClientInfo, DenyAction, NoMatch, Permission,
    load_acl, parse_acl, peer_host, topic_covers,
)

PUB, SUB = Action.PUBLISH, Action.SUBSCRIBE
ALLOW, DENY = Permission.ALLOW, Permission.DENY

EMQX_DEFAULT = """\
%%-------------- Default ACL rules -------------------------------------------------------

{allow, {username, {re, "^dashboard$"}}, subscribe, ["$SYS/#"]}.

{allow, {ipaddr, "127.0.0.1"}, all, ["$SYS/#", "#"]}.

{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.

{allow, all}.
%% NOTE! when deploy in production:
%% - Change the last rule to `{deny, all}.`
%% - Set config `authorization.no_match = deny`
"""

EMQX_DOCS_EXAMPLE = """\
%% Allow MQTT client using username "dashboard"  to subscribe to "$SYS/#" topics
{allow, {user, "dashboard"}, subscribe, ["$SYS/#"]}.

%% Allow users with IP address "127.0.0.1" to publish/subscribe to topics "$SYS/#", "#"
{allow, {ipaddr, "127.0.0.1"}, all, ["$SYS/#", "#"]}.

%% Deny "All Users" subscribe to "$SYS/#" "#" Topics
{deny, all, subscribe, ["$SYS/#", {eq, "#"}, {eq, "+/#"}]}.

%% As the last guard, it should be changed to `{deny, all}.` in production.
{allow, all}.
"""


def ci(client_id: str = "c1", username: str | None = None, host: str | None = "10.0.0.9",
       su: bool = False) -> ClientInfo:
    return ClientInfo(client_id, username, host, su)


# -- EMQX's default file ----------------------------------------------------------------------

def test_emqx_default_file_parses() -> None:
    acl = parse_acl(EMQX_DEFAULT, "acl.conf")
    assert [(r.permission, r.line) for r in acl.rules] == [
        (ALLOW, 3), (ALLOW, 5), (DENY, 7), (ALLOW, 9)]


@pytest.mark.parametrize("who, action, topic, expected", [
    # anyone else: no $SYS, no '#', everything else
    (ci(), SUB, "$SYS/brokers", DENY),
    (ci(), SUB, "$SYS/#", DENY),
    (ci(), SUB, "#", DENY),
    (ci(), SUB, "a/#", ALLOW),
    (ci(), SUB, "+/#", ALLOW),
    (ci(), SUB, "sensors/+/temp", ALLOW),
    (ci(), PUB, "a/b", ALLOW),
    (ci(), PUB, "$SYS/fake", ALLOW),          # the default file only restricts subscribe
    # dashboard user: $SYS allowed, '#' still denied
    (ci(username="dashboard"), SUB, "$SYS/brokers/+/clients/#", ALLOW),
    (ci(username="dashboard"), SUB, "#", DENY),
    (ci(username="dashboard2"), SUB, "$SYS/#", DENY),   # ^dashboard$ is anchored
    # localhost: everything
    (ci(host="127.0.0.1"), SUB, "#", ALLOW),
    (ci(host="127.0.0.1"), SUB, "$SYS/#", ALLOW),
    (ci(host="::ffff:127.0.0.1"), SUB, "#", ALLOW),     # v4-mapped from a dual-stack socket
    (ci(host="127.0.0.2"), SUB, "#", DENY),
    (ci(host=None), SUB, "#", DENY),
])
def test_emqx_default_file_semantics(who: ClientInfo, action: Action, topic: str,
                                     expected: Permission) -> None:
    assert parse_acl(EMQX_DEFAULT).check(who, action, topic) is expected


def test_emqx_docs_example() -> None:
    acl = parse_acl(EMQX_DOCS_EXAMPLE)
    assert acl.check(ci(), SUB, "+/#") is DENY
    assert acl.check(ci(), SUB, "+/+") is ALLOW
    assert acl.check(ci(username="dashboard"), SUB, "$SYS/x") is ALLOW


def test_load_acl_file(tmp_path: Path) -> None:
    p = tmp_path / "acl.conf"
    p.write_text(EMQX_DEFAULT)
    assert len(load_acl(p).rules) == 4
    with pytest.raises(AclParseError, match="cannot read"):
        load_acl(tmp_path / "missing.conf")
    p.write_bytes(b"{allow, all}.\n\xff\n")
    with pytest.raises(AclParseError) as e:
        load_acl(p)
    assert e.value.line == 2 and "UTF-8" in str(e.value)


# -- first match wins, no_match, superuser ----------------------------------------------------

def test_first_match_wins() -> None:
    acl = parse_acl("""
        {deny, all, publish, ["a/secret"]}.
        {allow, all, publish, ["a/#"]}.
        {deny, all, publish, ["a/#"]}.
    """)
    assert acl.check(ci(), PUB, "a/secret") is DENY
    assert acl.check(ci(), PUB, "a/open") is ALLOW
    assert acl.check(ci(), PUB, "b") is None
    flipped = parse_acl("{allow, all, publish, [\"a/#\"]}.\n{deny, all, publish, [\"a/secret\"]}.")
    assert flipped.check(ci(), PUB, "a/secret") is ALLOW


def test_no_match_and_superuser_and_disable() -> None:
    acl = parse_acl('{allow, all, publish, ["open/#"]}.')
    allow_default = Authorizer(acl)
    deny_default = Authorizer(acl, no_match="deny", deny_action="disconnect")
    assert deny_default.no_match is NoMatch.DENY
    assert deny_default.deny_action is DenyAction.DISCONNECT
    assert allow_default.authorize(ci(), PUB, "other")
    assert not deny_default.authorize(ci(), PUB, "other")
    assert deny_default.authorize(ci(), "publish", "open/x")
    assert deny_default.authorize(ci(su=True), PUB, "other")  # superusers bypass the ACL
    assert Authorizer(acl, no_match="deny", enable=False).authorize(ci(), PUB, "other")
    assert not Authorizer(None, no_match="deny").authorize(ci(), SUB, "x")
    s = deny_default.statistics()
    assert (s.allow, s.deny, s.no_match, s.superuser) == (1, 1, 1, 1)
    denyall = Authorizer(parse_acl("{deny, all}."))
    assert not denyall.authorize(ci(), PUB, "$SYS/x") and not denyall.authorize(ci(), SUB, "#")


# -- who --------------------------------------------------------------------------------------

def test_who_username_clientid_plain_and_re() -> None:
    acl = parse_acl("""
        {allow, {user, "u1"}, publish, ["t"]}.
        {allow, {username, {re, "^adm"}}, publish, ["t"]}.
        {allow, {client, "c9"}, publish, ["t"]}.
        {allow, {clientid, {re, "sensor-[0-9]+$"}}, publish, ["t"]}.
        {deny, all}.
    """)
    assert acl.check(ci(username="u1"), PUB, "t") is ALLOW
    assert acl.check(ci(username="u1x"), PUB, "t") is DENY
    assert acl.check(ci(username="admin"), PUB, "t") is ALLOW
    assert acl.check(ci(username=None), PUB, "t") is DENY
    assert acl.check(ci("c9"), PUB, "t") is ALLOW
    assert acl.check(ci("x-sensor-12"), PUB, "t") is ALLOW  # unanchored search, like re:run
    assert acl.check(ci("sensor-12x"), PUB, "t") is DENY


@pytest.mark.parametrize("host, expected", [
    ("192.168.1.7", ALLOW), ("192.168.2.7", DENY), ("10.1.2.3", ALLOW), ("10.1.2.4", DENY),
    ("fd00::1:5", ALLOW), ("fd01::1", DENY), ("::ffff:192.168.1.200", ALLOW), ("junk", DENY),
    (None, DENY),
])
def test_ipaddr_cidr(host: str | None, expected: Permission) -> None:
    acl = parse_acl("""
        {allow, {ipaddr, "192.168.1.0/24"}, all, ["#"]}.
        {allow, {ipaddrs, ["10.1.2.3", "fd00::/16"]}, all, ["#"]}.
        {deny, all}.
    """)
    assert acl.check(ci(host=host), PUB, "x") is expected


def test_ipaddr_host_bits_are_masked_like_emqx() -> None:
    acl = parse_acl('{allow, {ipaddr, "192.168.1.77/24"}, all, ["#"]}.\n{deny, all}.')
    assert acl.check(ci(host="192.168.1.1"), PUB, "x") is ALLOW


def test_and_or() -> None:
    acl = parse_acl("""
        {allow, {'and', [{username, "ops"}, {ipaddr, "10.0.0.0/8"}]}, all, ["ops/#"]}.
        {allow, {'or', [{clientid, "a"}, {clientid, "b"}]}, publish, ["ab"]}.
        {allow, {'or', [{'and', [{user, "x"}, {client, "y"}]}, {ipaddr, "1.1.1.1"}]}, all,
            ["nested"]}.
        {deny, all}.
    """)
    assert acl.check(ci(username="ops", host="10.2.3.4"), SUB, "ops/#") is ALLOW
    assert acl.check(ci(username="ops", host="11.2.3.4"), SUB, "ops/#") is DENY
    assert acl.check(ci(username="dev", host="10.2.3.4"), SUB, "ops/#") is DENY
    assert acl.check(ci("a"), PUB, "ab") is ALLOW
    assert acl.check(ci("b"), PUB, "ab") is ALLOW
    assert acl.check(ci("c"), PUB, "ab") is DENY
    assert acl.check(ci("y", "x"), PUB, "nested") is ALLOW
    assert acl.check(ci("z", "x", "1.1.1.1"), PUB, "nested") is ALLOW
    assert acl.check(ci("z", "x"), PUB, "nested") is DENY


# -- action -----------------------------------------------------------------------------------

def test_actions_with_qos_and_retain() -> None:
    acl = parse_acl("""
        {deny, all, {publish, [{qos, 2}, {retain, true}]}, ["t"]}.
        {deny, all, {publish, {retain, true}}, ["r"]}.
        {deny, all, {subscribe, [{qos, [1, 2]}]}, ["s"]}.
        {deny, all, {all, [{qos, 0}]}, ["q0"]}.
        {allow, all}.
    """)
    assert acl.check(ci(), PUB, "t", qos=2, retain=True) is DENY
    assert acl.check(ci(), PUB, "t", qos=2, retain=False) is ALLOW
    assert acl.check(ci(), PUB, "t", qos=1, retain=True) is ALLOW
    assert acl.check(ci(), PUB, "r", qos=0, retain=True) is DENY
    assert acl.check(ci(), PUB, "r", qos=0, retain=False) is ALLOW
    assert acl.check(ci(), SUB, "s", qos=2) is DENY
    assert acl.check(ci(), SUB, "s", qos=0) is ALLOW
    assert acl.check(ci(), PUB, "q0", qos=0) is DENY
    assert acl.check(ci(), SUB, "q0", qos=0) is DENY
    assert acl.check(ci(), SUB, "q0", qos=1) is ALLOW


def test_publish_and_subscribe_only_and_pubsub_alias() -> None:
    acl = parse_acl("""
        {allow, all, publish, ["p"]}.
        {allow, all, subscribe, ["s"]}.
        {allow, all, pubsub, ["ps"]}.
        {deny, all}.
    """)
    assert acl.check(ci(), PUB, "p") is ALLOW and acl.check(ci(), SUB, "p") is DENY
    assert acl.check(ci(), SUB, "s") is ALLOW and acl.check(ci(), PUB, "s") is DENY
    assert acl.check(ci(), PUB, "ps") is ALLOW and acl.check(ci(), SUB, "ps") is ALLOW


# -- topics -----------------------------------------------------------------------------------

def test_placeholders() -> None:
    acl = parse_acl("""
        {allow, all, all, ["clients/${clientid}/#"]}.
        {allow, all, publish, ["users/${username}/${clientid}"]}.
        {deny, all}.
    """)
    alice = ci("dev1", "alice")
    assert acl.check(alice, PUB, "clients/dev1/status") is ALLOW
    assert acl.check(alice, SUB, "clients/dev1/#") is ALLOW
    assert acl.check(alice, PUB, "clients/dev2/status") is DENY
    assert acl.check(alice, PUB, "users/alice/dev1") is ALLOW
    assert acl.check(alice, PUB, "users/alice/dev2") is DENY
    assert acl.check(ci("dev1", None), PUB, "users//dev1") is DENY  # no username: no match
    assert acl.check(ci("dev1", ""), PUB, "users//dev1") is DENY


@pytest.mark.parametrize("client_id", ["#", "+", "a/+", "x#"])
def test_placeholder_cannot_inject_wildcards(client_id: str) -> None:
    acl = parse_acl('{allow, all, all, ["${clientid}/#"]}.\n{deny, all}.')
    assert acl.check(ci(client_id), PUB, "victim/data") is DENY
    assert acl.check(ci(client_id), SUB, "#") is DENY


def test_eq_is_literal() -> None:
    acl = parse_acl("""
        {deny, all, subscribe, [{eq, "a/#"}, "eq b/+"]}.
        {allow, all}.
    """)
    assert acl.check(ci(), SUB, "a/#") is DENY
    assert acl.check(ci(), SUB, "a/x") is ALLOW
    assert acl.check(ci(), SUB, "a/+") is ALLOW
    assert acl.check(ci(), SUB, "b/+") is DENY
    assert acl.check(ci(), SUB, "b/x") is ALLOW
    assert acl.check(ci(), PUB, "a/x") is ALLOW


@pytest.mark.parametrize("acl_filter, requested, expected", [
    ("a/#", "a/#", True), ("a/#", "a", True), ("a/#", "a/b/c", True), ("a/#", "a/+", True),
    ("a/#", "a/+/c/#", True), ("#", "#", True), ("#", "$SYS/#", True), ("+", "a", True),
    ("+", "+", True), ("a/+", "a/+", True),
    # a requested '#' is only covered by an ACL '#' at that level or above (stricter than EMQX)
    ("+", "#", False), ("a/+", "a/#", False), ("a/+/#", "a/#", False), ("a/b/#", "a/#", False),
    ("a/b", "a/+", False), ("a/b", "a/#", False), ("a/+/c", "a/+/+", False),
])
def test_subscribe_filter_coverage(acl_filter: str, requested: str, expected: bool) -> None:
    assert topic_covers(acl_filter, requested, SUB) is expected


@pytest.mark.parametrize("acl_filter, topic, expected", [
    ("#", "$SYS/x", True), ("+/x", "$SYS/x", True), ("$SYS/#", "$SYS/a/b", True),
    ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a", True), ("a", "a", True),
    ("a", "b", False), ("#", "/", True),
])
def test_publish_topic_coverage(acl_filter: str, topic: str, expected: bool) -> None:
    assert topic_covers(acl_filter, topic, PUB) is expected


def test_shared_subscriptions_checked_on_real_filter() -> None:
    acl = parse_acl('{allow, all, subscribe, ["jobs/#"]}.\n{deny, all}.')
    assert acl.check(ci(), SUB, "$share/g1/jobs/+") is ALLOW
    assert acl.check(ci(), SUB, "$queue/jobs/x") is ALLOW
    assert acl.check(ci(), SUB, "$share/g1/other") is DENY


def test_lone_string_and_binary_topics_and_empty_list() -> None:
    acl = parse_acl("""
        {allow, all, publish, "${clientid}/#"}.
        {allow, all, publish, [<<"bin/t">>]}.
        {allow, all, publish, []}.
        {deny, all}.
    """)
    assert acl.check(ci("me"), PUB, "me/x") is ALLOW
    assert acl.check(ci(), PUB, "bin/t") is ALLOW
    assert acl.check(ci(), PUB, "other") is DENY


# -- cache ------------------------------------------------------------------------------------

def test_cache_is_bounded_and_invalidated_by_reload() -> None:
    authz = Authorizer(parse_acl('{deny, all, publish, ["x"]}.'), cache_max_size=2)
    cache = authz.new_cache()
    assert not authz.authorize(ci(), PUB, "x", cache=cache)
    assert not authz.authorize(ci(), PUB, "x", cache=cache)
    assert authz.statistics().cache_hits == 1
    for t in ("a", "b", "c"):
        authz.authorize(ci(), PUB, t, cache=cache)
    assert len(cache) == 2
    authz.reload(parse_acl("{allow, all}."))
    assert authz.authorize(ci(), PUB, "x", cache=cache)


# -- helpers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("peer, host", [
    ("127.0.0.1:5000", "127.0.0.1"), ("[::1]:5000", "::1"), ("::1", "::1"),
    ("10.0.0.1", "10.0.0.1"),
    ("", None), (None, None),
])
def test_peer_host(peer: str | None, host: str | None) -> None:
    assert peer_host(peer) == host


def test_empty_acl() -> None:
    assert parse_acl("%% nothing here\n\n") == Acl((), "<acl>")


def test_byte_order_mark_and_crlf() -> None:
    assert len(parse_acl("\ufeff{allow, all}.\r\n{deny, all}.\r\n").rules) == 2
