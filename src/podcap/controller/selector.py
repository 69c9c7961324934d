"""Kubernetes label selectors (``app=web,tier!=db,env in (prod,staging),!canary``).

The grammar is Kubernetes' own (apimachinery ``labels.Parse``): requirements separated by
commas, all of which must hold:

- ``key=value``, ``key==value``, ``key!=value`` (``!=`` also holds when the key is absent);
- ``key in (v1,v2)``, ``key notin (v1,v2)`` (``notin`` also holds when the key is absent);
- ``key`` (the label exists), ``!key`` (it does not).

Keys are qualified names (``[prefix/]name``), values are at most 63 characters of
``[A-Za-z0-9._-]`` starting and ending alphanumeric, or empty. A syntax error names the
character position (0-based) where the parser gave up, so an interface can point at it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from podcap import limits
from podcap.errors import InvalidArgument

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_WORD = re.compile(r"[^\s,=!()]+")  # what a key or value token may be made of before checks
_OPS = ("==", "!=", "=")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # "!=", "notin"

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        return f"{self.key}{self.op}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(map(str, self.requirements))


def parse(text: str) -> LabelSelector:
    """The selector ``text`` spells; ``InvalidArgument`` naming the position of an error."""
    if len(text) > limits.LABEL_SELECTOR_MAX_CHARS:
        raise InvalidArgument(f"label selector is {len(text)} characters; the maximum is "
                              f"{limits.LABEL_SELECTOR_MAX_CHARS}")
    return LabelSelector(tuple(_Parser(text).requirements()))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str, at: int | None = None) -> InvalidArgument:
        at = self.pos if at is None else at
        shown = self.text[at:at + 12] or "end of input"
        return InvalidArgument(f"label selector {self.text!r}: at position {at} "
                               f"({shown!r}): {what}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip_space()
        return self.text.startswith(token, self.pos)

    def word(self, what: str) -> tuple[str, int]:
        self.skip_space()
        found = _WORD.match(self.text, self.pos)
        if not found:
            raise self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group(), found.start()

    def requirements(self) -> list[Requirement]:
        found: list[Requirement] = []
        self.skip_space()
        if self.pos == len(self.text):
            raise self.fail("empty selector: expected a label key")
        while True:
            found.append(self.requirement())
            self.skip_space()
            if self.pos == len(self.text):
                return found
            if not self.peek(","):
                raise self.fail("expected ',' or the end of the selector")
            self.pos += 1

    def requirement(self) -> Requirement:
        if self.peek("!") and not self.peek("!="):
            self.pos += 1
            return Requirement(self.key(), "!")
        key = self.key()
        self.skip_space()
        for op in _OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return Requirement(key, "=" if op == "==" else op, (self.value(),))
        if self.pos == len(self.text) or self.peek(","):
            return Requirement(key, "exists")
        op, at = self.word("an operator (=, ==, !=, in, notin)")
        if op not in ("in", "notin"):
            raise self.fail("expected an operator (=, ==, !=, in, notin)", at)
        if not self.peek("("):
            raise self.fail(f"expected '(' after {op}")
        self.pos += 1
        values = [self.value()]
        while self.peek(","):
            self.pos += 1
            values.append(self.value())
        if not self.peek(")"):
            raise self.fail("expected ',' or ')' in the value list")
        self.pos += 1
        return Requirement(key, op, tuple(values))

    def key(self) -> str:
        key, at = self.word("a label key")
        prefix, _, name = key.rpartition("/")
        if "/" in key and (len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):  # "" fails too
            raise self.fail(f"label key prefix {prefix!r} is not a DNS subdomain", at)
        if not _NAME.fullmatch(name):
            raise self.fail(f"label key {key!r} is not a valid name (at most 63 of "
                            "A-Z a-z 0-9 - _ . starting and ending alphanumeric)", at)
        return key

    def value(self) -> str:
        self.skip_space()
        found = _WORD.match(self.text, self.pos)
        if not found:  # an empty value: "key=" or "key in (a,)"
            return ""
        self.pos = found.end()
        if not _NAME.fullmatch(found.group()):
            raise self.fail(f"label value {found.group()!r} is not valid (at most 63 of "
                            "A-Z a-z 0-9 - _ . starting and ending alphanumeric)", found.start())
        return found.group()
