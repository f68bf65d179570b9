"""A reader for the Erlang-term subset used by EMQX's ``acl.conf`` (no eval, ever).

Theory of operation: ``read_terms(text)`` tokenizes and parses a sequence of terms, each
ended by a dot, into small frozen nodes (`Atom`, `Str`, `Int`, `Tuple`, `List`) that carry
the line they start on, so the ACL compiler can name the line of any bad sub-term.

Supported (what ``file:consult/1`` would read for an ACL): atoms (``allow``, ``'and'``),
strings ``"..."`` with the usual escapes, binaries ``<<"...">>`` (read as strings),
integers, tuples ``{...}``, lists ``[...]``, ``%`` comments to end of line. Anything else
(variables, floats, maps, funs, ...) is an `AclParseError` naming the line. Nesting is
bounded so hostile input cannot exhaust the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from mqttmesh.access.errors import AclParseError

__all__ = ["Atom", "Str", "Int", "Tuple", "List", "Term", "read_terms", "MAX_DEPTH"]

MAX_DEPTH = 32
"""Deepest nesting of tuples/lists accepted."""

_MAX_INT_DIGITS = 18
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "s": " ", "e": "\x1b", "b": "\b", "f": "\f",
            "v": "\v", "d": "\x7f", "0": "\x00", "\\": "\\", '"': '"', "'": "'"}
_ATOM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@")


@dataclass(frozen=True, slots=True)
class Atom:
    """An atom: ``allow``, ``'and'``."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Str:
    """A string or binary literal, already unescaped."""

    value: str
    line: int


@dataclass(frozen=True, slots=True)
class Int:
    """An integer literal."""

    value: int
    line: int


@dataclass(frozen=True, slots=True)
class Tuple:
    """``{a, b, ...}``."""

    items: tuple[Term, ...]
    line: int


@dataclass(frozen=True, slots=True)
class List:
    """``[a, b, ...]``."""

    items: tuple[Term, ...]
    line: int


Term = Union[Atom, Str, Int, Tuple, List]

# token kinds: one of "{", "}", "[", "]", ",", ".", "<<", ">>", "atom", "str", "int", "eof"
_Token = tuple[str, object, int]


def _tokenize(text: str, source: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r\f\v":
            i += 1
        elif c == "%":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "{}[],":
            tokens.append((c, c, line))
            i += 1
        elif c == ".":
            nxt = text[i + 1:i + 2]
            if nxt and nxt not in " \t\r\n\f\v%":
                raise AclParseError("'.' must end a term and be followed by white space",
                                    line, source)
            tokens.append((".", ".", line))
            i += 1
        elif text.startswith("<<", i):
            tokens.append(("<<", "<<", line))
            i += 2
        elif text.startswith(">>", i):
            tokens.append((">>", ">>", line))
            i += 2
        elif c == '"' or c == "'":
            start_line = line
            value, i, line = _read_quoted(text, i, line, source)
            tokens.append(("str" if c == '"' else "atom", value, start_line))
        elif "a" <= c <= "z":
            j = i + 1
            while j < n and text[j] in _ATOM_CHARS:
                j += 1
            tokens.append(("atom", text[i:j], line))
            i = j
        elif c.isascii() and (c.isdigit() or (c == "-" and text[i + 1:i + 2].isdigit()
                                              and text[i + 1].isascii())):
            j = i + 1
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            digits = text[i:j]
            if len(digits) > _MAX_INT_DIGITS:
                raise AclParseError(f"integer too long: {digits[:20]}...", line, source)
            if j < n and text[j] in ".#eE" and text[j + 1:j + 2].isdigit():
                raise AclParseError("floats and based integers are not supported", line,
                                    source)
            tokens.append(("int", int(digits), line))
            i = j
        elif c.isupper() or c == "_":
            j = i + 1
            while j < n and text[j] in _ATOM_CHARS:
                j += 1
            raise AclParseError(f"variables are not allowed: {text[i:j]!r} "
                                f"(quote it: '{text[i:j]}' or \"{text[i:j]}\")", line, source)
        else:
            raise AclParseError(f"unexpected character {c!r}", line, source)
    tokens.append(("eof", None, line))
    return tokens


def _read_quoted(text: str, i: int, line: int, source: str) -> tuple[str, int, int]:
    """Read a ``"..."`` or ``'...'`` literal starting at ``text[i]``; return (value, end, line)."""
    quote = text[i]
    start_line = line
    out: list[str] = []
    i += 1
    n = len(text)
    while True:
        j = i
        while j < n and text[j] not in (quote, "\\", "\n"):
            j += 1
        out.append(text[i:j])
        if j >= n:
            what = "string" if quote == '"' else "quoted atom"
            raise AclParseError(f"unterminated {what}", start_line, source)
        c = text[j]
        if c == quote:
            return "".join(out), j + 1, line
        if c == "\n":
            out.append("\n")
            line += 1
            i = j + 1
            continue
        esc = text[j + 1:j + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i = j + 2
        elif esc == "\n":  # backslash-newline: a newline in the value, like Erlang
            out.append("\n")
            line += 1
            i = j + 2
        else:
            raise AclParseError(f"unsupported escape \\{esc}" if esc else "unterminated string",
                                line, source)


class _Parser:
    def __init__(self, tokens: list[_Token], source: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.source = source

    def error(self, message: str, line: int | None = None) -> AclParseError:
        return AclParseError(message, self.tokens[self.pos][2] if line is None else line,
                             self.source)

    def peek(self) -> str:
        return self.tokens[self.pos][0]

    def take(self, kind: str, what: str) -> _Token:
        tok = self.tokens[self.pos]
        if tok[0] != kind:
            raise self.error(f"expected {what}, found {_describe(tok)}")
        self.pos += 1
        return tok

    def terms(self) -> list[Term]:
        out: list[Term] = []
        while self.peek() != "eof":
            out.append(self.term(0))
            if self.peek() != ".":
                raise self.error(f"expected '.' after a term, found "
                                 f"{_describe(self.tokens[self.pos])}")
            self.pos += 1
        return out

    def term(self, depth: int) -> Term:
        if depth > MAX_DEPTH:
            raise self.error(f"terms nested deeper than {MAX_DEPTH}")
        kind, value, line = self.tokens[self.pos]
        if kind == "atom":
            self.pos += 1
            return Atom(str(value), line)
        if kind == "str":
            self.pos += 1
            return Str(str(value), line)
        if kind == "int":
            self.pos += 1
            assert isinstance(value, int)
            return Int(value, line)
        if kind == "<<":
            self.pos += 1
            if self.peek() == ">>":
                self.pos += 1
                return Str("", line)
            s = self.take("str", 'a string inside <<"...">>')
            self.take(">>", "'>>'")
            return Str(str(s[1]), line)
        if kind == "{":
            self.pos += 1
            return Tuple(self.items("}", depth), line)
        if kind == "[":
            self.pos += 1
            return List(self.items("]", depth), line)
        raise self.error(f"expected a term, found {_describe(self.tokens[self.pos])}")

    def items(self, close: str, depth: int) -> tuple[Term, ...]:
        items: list[Term] = []
        if self.peek() == close:
            self.pos += 1
            return ()
        while True:
            items.append(self.term(depth + 1))
            if self.peek() == ",":
                self.pos += 1
                continue
            self.take(close, f"',' or '{close}'")
            return tuple(items)


def _describe(tok: _Token) -> str:
    kind, value, _ = tok
    if kind == "eof":
        return "end of file"
    if kind == "str":
        return f"string {str(value)[:40]!r}"
    if kind == "atom":
        return f"atom {str(value)[:40]}"
    if kind == "int":
        return f"integer {value}"
    return f"'{value}'"


def read_terms(text: str, source: str = "<acl>") -> list[Term]:
    """Read every dot-terminated term of ``text``.

    Args:
        text: the file content.
        source: file name used in error messages.

    Raises:
        AclParseError: any syntax error, naming the line; nothing else escapes.
    """
    return _Parser(_tokenize(text, source), source).terms()
