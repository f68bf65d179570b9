"""ACL parse errors name the line; arbitrary text raises nothing but AclParseError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqttmesh.access import AclParseError, ClientInfo, Action, parse_acl, read_terms
from mqttmesh.access.terms import MAX_DEPTH, Atom, Int, List, Str, Tuple


def test_term_reader() -> None:
    terms = read_terms('{a, \'and\', "s\\"q\\n", <<"b">>, -12, [x, []]}.\n{b}.')
    assert terms[0] == Tuple((Atom("a", 1), Atom("and", 1), Str('s"q\n', 1), Str("b", 1),
                              Int(-12, 1), List((Atom("x", 1), List((), 1)), 1)), 1)
    assert terms[1] == Tuple((Atom("b", 2),), 2)


@pytest.mark.parametrize("text, line, fragment", [
    ('{allow, all}', 1, "expected '.'"),
    ('{allow, all}.\n{allow, all}', 2, "expected '.'"),
    ('{allow, all}.\n\n{allow, all, publish, ["a"]', 3, "expected ',' or '}'"),
    ('{allow, all}.\n{allow, all, publish, ["a]}.\n', 2, "unterminated string"),
    ('\n\n{allow, Who, publish, ["a"]}.', 3, "variables are not allowed"),
    ('{allow, all}.\n{allow, all, publish, ["a"]}.x', 2, "'.' must end a term"),
    ('{allow, all, publish, ["a"]}.\n{allow, 1.5}.', 2, "floats"),
    ('\n{allow, all, publish, ["a" "b"]}.', 2, "expected ',' or ']'"),
    ('{allow, all, publish, ["\\q"]}.', 1, "unsupported escape"),
    ('{allow, all, publish, ["a"]}.\n  ; ', 2, "unexpected character ';'"),
    ('{allow, all, publish, ["a"]}.\n\'open', 2, "unterminated quoted atom"),
    ('{ok}.\n{allow, <<x>>}.', 2, "inside <<"),
    ('{12345678901234567890123}.', 1, "integer too long"),
    # rule-level errors name the line of the offending sub-term
    ('{allow, all}.\n{permit, all}.', 2, "permission must be allow or deny"),
    ('{allow, all}.\n{allow, all, publish}.', 2, "a rule is"),
    ('{allow, nobody}.', 1, "{allow, all}"),
    ('{allow,\n {username, 5},\n publish, ["a"]}.', 2, "username expects"),
    ('{allow, {ipaddr, "300.1.1.1"}, publish, ["a"]}.', 1, "bad IP address"),
    ('{allow, {ipaddrs, "1.1.1.1"}, publish, ["a"]}.', 1, "ipaddrs expects a list"),
    ('{allow, {host, "x"}, publish, ["a"]}.', 1, "unknown client condition"),
    ('{allow, {\'and\', {user, "x"}}, publish, ["a"]}.', 1, "expects a list"),
    ('{allow, {username, {re, "("}}, publish, ["a"]}.', 1, "bad regular expression"),
    ('{allow, all,\n\n pubsub2, ["a"]}.', 3, "unknown action"),
    ('{allow, all, {publish, [{qos, 3}]}, ["a"]}.', 1, "qos must be 0, 1 or 2"),
    ('{allow, all, {publish, [{retain, yes}]}, ["a"]}.', 1, "retain must be"),
    ('{allow, all, {publish, [{dup, true}]}, ["a"]}.', 1, "unknown action option"),
    ('{allow, all, publish, a}.', 1, "topics must be a list"),
    ('{allow, all, publish, ["a",\n 5]}.', 2, "bad topic 5"),
    ('{allow, all, publish, ["a/#/b"]}.', 1, "bad topic filter"),
    ('{allow, all, publish, ["a+"]}.', 1, "bad topic filter"),
    ('{allow, all, publish, [""]}.', 1, "empty topic"),
    ('{allow, all, publish, ["${cn}/#"]}.', 1, "unknown placeholder ${cn}"),
    ('{allow, all, publish, ["${clientid/#"]}.', 1, "unterminated placeholder"),
    ('{allow, all, publish, [{eq, ""}]}.', 1, "{eq, ..} expects"),
    ("{" * (MAX_DEPTH + 5), 1, "nested deeper"),
])
def test_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(AclParseError) as e:
        parse_acl(text, "etc/acl.conf")
    assert e.value.line == line, str(e.value)
    assert fragment in str(e.value)
    assert str(e.value).startswith(f"etc/acl.conf:{line}: ")


# -- property: nothing but AclParseError ------------------------------------------------------

_FRAGMENTS = ['{', '}', '[', ']', ',', '.', ' ', '\n', '%', '"', "'", '<<', '>>', 'allow',
              'deny', 'all', 'publish', 'subscribe', '{eq, ', '{re, ', 'username', 'clientid',
              'ipaddr', 'ipaddrs', "'and'", "'or'", 'qos', 'retain', 'true', '"#"', '"a/+"',
              '"${clientid}"', '"${', '"10.0.0.0/8"', '"::1"', '0', '2', '-1', '\\', 'X', '_',
              '"(("', '"[a-"', '"\\x"', '1.0', '"\x00"', '\t']


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_acl_parse_error(text: str) -> None:
    _parse_and_use(text)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=60))
def test_token_soup_raises_only_acl_parse_error(parts: list[str]) -> None:
    _parse_and_use("".join(parts))


_RULES = [
    '{allow, {username, {re, "^dash"}}, subscribe, ["$SYS/#"]}.',
    '{allow, {ipaddr, "127.0.0.1"}, all, ["$SYS/#", "#"]}.',
    '{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.',
    '{allow, {\'and\', [{clientid, "c"}, {ipaddrs, ["10.0.0.0/8"]}]}, '
    '{publish, [{qos, [1,2]}, {retain, true}]}, ["${clientid}/#"]}.',
    '{allow, all}.',
]


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_RULES), min_size=1, max_size=5),
       st.integers(0, 400), st.integers(0, 6), st.text(max_size=6))
def test_mutated_valid_files_raise_only_acl_parse_error(rules: list[str], at: int, cut: int,
                                                        insert: str) -> None:
    text = "\n".join(rules)
    at %= len(text) + 1
    _parse_and_use(text[:at] + insert + text[at + cut:])


def _parse_and_use(text: str) -> None:
    try:
        acl = parse_acl(text)
    except AclParseError as exc:
        assert exc.line >= 1
        return
    who = ClientInfo("c", "dashboard", "10.0.0.1")
    for action in (Action.PUBLISH, Action.SUBSCRIBE):
        for topic in ("a/b", "$SYS/x", "c/#", "#"):
            acl.check(who, action, topic, 1, True)
