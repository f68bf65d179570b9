"""ACL rules in EMQX ``acl.conf`` syntax: compile terms into rules, match a request, first wins.

Theory of operation: `parse_acl` reads the terms (`terms.read_terms`) and compiles each into
a `Rule` (permission, who, action condition, topic patterns). `Acl.check` walks the rules in
file order and returns the permission of the first rule whose who, action and topic all
match, or None when none does (the `Authorizer` then applies ``no_match``).

Semantics follow EMQX's ``emqx_authz_rule`` (apps/emqx_auth, EMQX 5.x):
- ``{Perm, all}`` is ``{Perm, all, all, ["#"]}``.
- who: ``all``; ``{user|username, "u"}``; ``{user|username, {re, "re"}}``; ``{client|clientid,
  ...}`` likewise; ``{ipaddr, "CIDR"}``; ``{ipaddrs, [...]}``; ``{'and', [...]}``;
  ``{'or', [...]}``. A username condition never matches a client without a username.
  ``re`` is an unanchored search (Python ``re``, close to PCRE for the usual patterns).
- action: ``publish | subscribe | all`` or ``{Action, [{qos, 0..2 | [..]}, {retain, true |
  false | all}]}``; a single option may be given without the list.
- topics: a topic filter (wildcards allowed), ``{eq, "t"}`` for a literal comparison, and
  ``${clientid}`` / ``${username}`` placeholders.
- ACL filters cover ``$`` topics too: ``#`` in an ACL matches ``$SYS/x`` ([MQTT-4.7.2-1] is
  about subscriptions, not ACLs; EMQX matches ACLs on split words, without that rule).
- For SUBSCRIBE the requested filter (without its ``$share/G/`` or ``$queue/`` prefix) is
  matched as if it were a topic; deliberately stricter than EMQX, a requested ``#`` level is
  covered only by an ACL ``#`` at the same level or above (EMQX lets ACL ``+`` cover a
  requested ``#``, which would grant a whole subtree).
- A placeholder whose value is missing, empty or holds ``+`` / ``#`` renders no topic (the
  pattern does not match), so a client id like ``#`` cannot widen a ``${clientid}/#`` rule.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from mqttmesh.access.errors import AclParseError
from mqttmesh.access.terms import Atom, Int, List, Str, Term, Tuple, read_terms
from mqttmesh.protocol import matches, parse_share

__all__ = ["Action", "ClientInfo", "Permission", "Rule", "Acl", "parse_acl", "load_acl",
           "topic_covers"]


class Action(Enum):
    """What the client asks to do."""

    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


class Permission(Enum):
    """The first element of a rule."""

    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who asks: fixed for the life of one connection.

    Attributes:
        client_id: the (possibly assigned) client identifier.
        username: the CONNECT user name, or None.
        peer_host: the client's IP address without port (see `peer_host`), or None.
        is_superuser: from authentication; superusers bypass the ACL.
    """

    client_id: str
    username: str | None = None
    peer_host: str | None = None
    is_superuser: bool = False


# -- who --------------------------------------------------------------------------------------

_Who = Callable[[ClientInfo], bool]
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip_of(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack listener
    return ip


def _in_networks(nets: tuple[_Net, ...]) -> _Who:
    # Parsing an address costs microseconds and runs on every PUBLISH: remember the answer
    # per host (bounded; a connection's host never changes).
    @functools.lru_cache(maxsize=4096)
    def host_in(host: str | None) -> bool:
        ip = _ip_of(host)
        return ip is not None and any(ip.version == n.version and ip in n for n in nets)

    return lambda ci: host_in(ci.peer_host)


def _text_matcher(field: str, spec: Term, source: str) -> Callable[[str | None], bool]:
    if isinstance(spec, Str):
        want = spec.value
        return lambda value: value is not None and value == want
    if (isinstance(spec, Tuple) and len(spec.items) == 2 and _is_atom(spec.items[0], "re")
            and isinstance(spec.items[1], Str)):
        pattern = spec.items[1].value
        try:
            rx = re.compile(pattern)
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            raise AclParseError(f"bad regular expression {pattern!r} for {field}: {exc}",
                                spec.line, source) from None
        return lambda value: value is not None and rx.search(value) is not None
    raise AclParseError(f'{field} expects "text" or {{re, "regex"}}', spec.line, source)


def _compile_who(t: Term, source: str) -> _Who:
    if _is_atom(t, "all"):
        return lambda ci: True
    if not (isinstance(t, Tuple) and len(t.items) == 2 and isinstance(t.items[0], Atom)):
        raise AclParseError(f"bad client condition {_show(t)}: expected all, {{username, ..}}, "
                            "{clientid, ..}, {ipaddr, ..}, {ipaddrs, [..]}, {'and', [..]} or "
                            "{'or', [..]}", t.line, source)
    kind, arg = t.items[0].name, t.items[1]
    if kind in ("user", "username"):
        m = _text_matcher("username", arg, source)
        return lambda ci: m(ci.username)
    if kind in ("client", "clientid"):
        m = _text_matcher("clientid", arg, source)
        return lambda ci: m(ci.client_id)
    if kind == "ipaddr":
        if not isinstance(arg, Str):
            raise AclParseError('ipaddr expects "address" or "address/prefix"', arg.line, source)
        return _in_networks((_network(arg, source),))
    if kind == "ipaddrs":
        if not isinstance(arg, List) or not all(isinstance(a, Str) for a in arg.items):
            raise AclParseError('ipaddrs expects a list of "address[/prefix]"', arg.line,
                                source)
        return _in_networks(tuple(_network(a, source) for a in arg.items))
    if kind in ("and", "or"):
        if not isinstance(arg, List):
            raise AclParseError(f"'{kind}' expects a list of client conditions", arg.line,
                                source)
        parts = tuple(_compile_who(a, source) for a in arg.items)
        if kind == "and":
            return lambda ci: all(p(ci) for p in parts)
        return lambda ci: any(p(ci) for p in parts)
    raise AclParseError(f"unknown client condition {kind!r}", t.line, source)


def _network(t: Term, source: str) -> _Net:
    assert isinstance(t, Str)
    try:
        # host bits are masked, like esockd_cidr:parse(CIDR, true)
        return ipaddress.ip_network(t.value.strip(), strict=False)
    except ValueError as exc:
        raise AclParseError(f"bad IP address or CIDR {t.value!r}: {exc}", t.line,
                            source) from None


# -- action -----------------------------------------------------------------------------------

_ALL_QOS = frozenset((0, 1, 2))


@dataclass(frozen=True, slots=True)
class _ActionCond:
    publish: bool
    subscribe: bool
    qos: frozenset[int] = _ALL_QOS
    retain: bool | None = None  # None = any; only checked for publish

    def matches(self, action: Action, qos: int, retain: bool) -> bool:
        if action is Action.PUBLISH:
            if not self.publish:
                return False
            return qos in self.qos and (self.retain is None or self.retain == retain)
        return self.subscribe and qos in self.qos


_SIMPLE_ACTIONS = {"publish": (True, False), "subscribe": (False, True), "all": (True, True),
                   "pubsub": (True, True)}  # pubsub: EMQX 4.x spelling


def _compile_action(t: Term, source: str) -> _ActionCond:
    if isinstance(t, Atom) and t.name in _SIMPLE_ACTIONS:
        return _ActionCond(*_SIMPLE_ACTIONS[t.name])
    if (isinstance(t, Tuple) and len(t.items) == 2 and isinstance(t.items[0], Atom)
            and t.items[0].name in _SIMPLE_ACTIONS):
        pub, sub = _SIMPLE_ACTIONS[t.items[0].name]
        opts_t = t.items[1]
        opts = opts_t.items if isinstance(opts_t, List) else (opts_t,)
        qos: set[int] = set()
        retain: bool | None = None
        for o in opts:
            if not (isinstance(o, Tuple) and len(o.items) == 2 and isinstance(o.items[0], Atom)):
                raise AclParseError(f"bad action option {_show(o)}: expected {{qos, ..}} or "
                                    "{retain, ..}", o.line, source)
            name, val = o.items[0].name, o.items[1]
            if name == "qos":
                values = val.items if isinstance(val, List) else (val,)
                for v in values:
                    if not (isinstance(v, Int) and 0 <= v.value <= 2):
                        raise AclParseError(f"qos must be 0, 1 or 2, not {_show(v)}", v.line,
                                            source)
                    qos.add(v.value)
            elif name == "retain":
                if not (isinstance(val, Atom) and val.name in ("true", "false", "all")):
                    raise AclParseError(f"retain must be true, false or all, not {_show(val)}",
                                        val.line, source)
                retain = None if val.name == "all" else val.name == "true"
            else:
                raise AclParseError(f"unknown action option {name!r}", o.line, source)
        return _ActionCond(pub, sub, frozenset(qos) if qos else _ALL_QOS, retain)
    raise AclParseError(f"unknown action {_show(t)}: expected publish, subscribe, all or "
                        "{Action, [{qos, ..}, {retain, ..}]}", t.line, source)


# -- topics -----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_VARS = ("clientid", "username")


def topic_covers(acl_filter: str, topic: str, action: Action) -> bool:
    """True if an ACL topic filter covers a published topic or a requested topic filter.

    Publish: plain MQTT matching, except that ACL wildcards also cover ``$`` topics.
    Subscribe: the requested filter is matched as a topic; a trailing ``#`` in it must be
    met by an ACL ``#`` at that level or above.
    """
    if topic[:1] == "$":
        if not matches("_/" + acl_filter, "_/" + topic):  # lift [MQTT-4.7.2-1] for ACLs
            return False
    elif not matches(acl_filter, topic):
        return False
    if action is Action.SUBSCRIBE and topic[-1:] == "#":
        depth = topic.count("/")
        return acl_filter[-1:] == "#" and acl_filter.count("/") <= depth
    return True


@dataclass(frozen=True, slots=True)
class _TopicPattern:
    text: str
    eq: bool = False
    template: tuple[str, ...] | None = None  # literal, var, literal, var, ..., literal

    def covers(self, ci: ClientInfo, topic: str, action: Action) -> bool:
        if self.eq:
            return topic == self.text
        if self.template is None:
            return topic_covers(self.text, topic, action)
        parts = self.template
        out = [parts[0]]
        for k in range(1, len(parts), 2):
            value = ci.client_id if parts[k] == "clientid" else ci.username
            if not value or "+" in value or "#" in value:
                return False
            out.append(value)
            out.append(parts[k + 1])
        return topic_covers("".join(out), topic, action)


def _compile_topic(t: Term, source: str) -> _TopicPattern:
    if isinstance(t, Tuple) and len(t.items) == 2 and _is_atom(t.items[0], "eq"):
        if not isinstance(t.items[1], Str) or not t.items[1].value:
            raise AclParseError('{eq, ..} expects a non-empty "topic"', t.line, source)
        return _TopicPattern(t.items[1].value, eq=True)
    if not isinstance(t, Str):
        raise AclParseError(f'bad topic {_show(t)}: expected "filter" or {{eq, "topic"}}',
                            t.line, source)
    text = t.value
    if text.startswith("eq "):  # EMQX also accepts the string form "eq t/#"
        return _TopicPattern(text[3:], eq=True)
    if not text:
        raise AclParseError("empty topic", t.line, source)
    if "\x00" in text:
        raise AclParseError("U+0000 in topic", t.line, source)
    levels = text.split("/")
    for i, level in enumerate(levels):
        if ("#" in level and (level != "#" or i != len(levels) - 1)) or \
                ("+" in level and level != "+"):
            raise AclParseError(f"bad topic filter {text!r}: '#' must be a whole last level "
                                "and '+' a whole level", t.line, source)
    pieces = _PLACEHOLDER.split(text)
    if len(pieces) == 1:
        if "${" in text:
            raise AclParseError(f"unterminated placeholder in {text!r}", t.line, source)
        return _TopicPattern(text)
    for k in range(1, len(pieces), 2):
        if pieces[k] not in _VARS:
            raise AclParseError(f"unknown placeholder ${{{pieces[k]}}} in {text!r}; supported: "
                                "${clientid}, ${username}", t.line, source)
    if any("${" in pieces[k] for k in range(0, len(pieces), 2)):
        raise AclParseError(f"unterminated placeholder in {text!r}", t.line, source)
    return _TopicPattern(text, template=tuple(pieces))


# -- rules ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule; ``line`` is where it starts in its file."""

    permission: Permission
    who: _Who
    action: _ActionCond
    topics: tuple[_TopicPattern, ...]
    line: int

    def matches(self, ci: ClientInfo, action: Action, topic: str, qos: int,
                retain: bool) -> bool:
        """True if this rule applies to the request (its permission then decides)."""
        return (self.action.matches(action, qos, retain) and self.who(ci)
                and any(p.covers(ci, topic, action) for p in self.topics))  # see Acl.check


_ALL_TOPICS = (_TopicPattern("#"),)


def _compile_rule(t: Term, source: str) -> Rule:
    if not isinstance(t, Tuple) or len(t.items) not in (2, 4):
        raise AclParseError(f"a rule is {{Permission, Who, Action, Topics}} or "
                            f"{{Permission, all}}, not {_show(t)}", t.line, source)
    perm_t = t.items[0]
    if not (isinstance(perm_t, Atom) and perm_t.name in ("allow", "deny")):
        raise AclParseError(f"permission must be allow or deny, not {_show(perm_t)}",
                            perm_t.line, source)
    perm = Permission(perm_t.name)
    if len(t.items) == 2:
        if not _is_atom(t.items[1], "all"):
            raise AclParseError(f"a 2-element rule is {{{perm.value}, all}}", t.line, source)
        return Rule(perm, lambda ci: True, _ActionCond(True, True), _ALL_TOPICS, t.line)
    who = _compile_who(t.items[1], source)
    action = _compile_action(t.items[2], source)
    topics_t = t.items[3]
    if isinstance(topics_t, Str):
        topic_terms: tuple[Term, ...] = (topics_t,)  # a lone string: one topic
    elif isinstance(topics_t, List):
        topic_terms = topics_t.items
    else:
        raise AclParseError(f"topics must be a list, not {_show(topics_t)}", topics_t.line,
                            source)
    topics = tuple(_compile_topic(x, source) for x in topic_terms)
    return Rule(perm, who, action, topics, t.line)


@dataclass(frozen=True, slots=True)
class Acl:
    """An ordered, immutable rule list. Build with `parse_acl` or `load_acl`."""

    rules: tuple[Rule, ...] = ()
    source: str = "<acl>"

    def check(self, ci: ClientInfo, action: Action, topic: str, qos: int = 0,
              retain: bool = False) -> Permission | None:
        """The permission of the first matching rule, or None if no rule matches.

        Args:
            ci: the client.
            action: publish or subscribe.
            topic: the topic name (publish) or the requested topic filter (subscribe; a
                ``$share/G/`` or ``$queue/`` prefix is removed before matching). The caller
                validates it first.
            qos: the publish QoS or the requested subscription QoS.
            retain: the publish retain flag (ignored for subscribe).
        """
        # Runs for every PUBLISH without a cache hit: `Rule.matches` inlined, cheapest test
        # first (action flags), then who, then topics.
        publish = action is Action.PUBLISH
        if not publish:
            topic = parse_share(topic)[1]
        for rule in self.rules:
            a = rule.action
            if publish:
                if not a.publish or qos not in a.qos or \
                        (a.retain is not None and a.retain != retain):
                    continue
            elif not a.subscribe or qos not in a.qos:
                continue
            if not rule.who(ci):
                continue
            for pattern in rule.topics:
                if pattern.covers(ci, topic, action):
                    return rule.permission
        return None


def parse_acl(text: str, source: str = "<acl>") -> Acl:
    """Compile ACL text in EMQX acl.conf syntax.

    Raises:
        AclParseError: the first syntax or rule error, naming ``source`` and the line.
    """
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte order mark left by an editor
    return Acl(tuple(_compile_rule(t, source) for t in read_terms(text, source)), source)


def load_acl(path: str | Path) -> Acl:
    """Read and compile an ACL file (UTF-8).

    Raises:
        AclParseError: the file is unreadable (line 0), not UTF-8, or has a bad rule.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AclParseError(f"cannot read ACL file: {exc.strerror or exc}", 0, source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise AclParseError("not valid UTF-8", line, source) from None
    return parse_acl(text, source)


def _is_atom(t: Term, name: str) -> bool:
    return isinstance(t, Atom) and t.name == name


def _show(t: Term) -> str:
    if isinstance(t, Atom):
        return t.name if t.name.isidentifier() else f"'{t.name}'"
    if isinstance(t, Str):
        return f'"{t.value[:40]}"'
    if isinstance(t, Int):
        return str(t.value)
    inner = ", ".join(_show(x) for x in t.items[:4]) + (", ..." if len(t.items) > 4 else "")
    return f"{{{inner}}}" if isinstance(t, Tuple) else f"[{inner}]"
