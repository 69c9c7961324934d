"""The label selector parser: Kubernetes' grammar, and errors that say where."""

from __future__ import annotations

import pytest

from podcap.controller.selector import parse
from podcap.errors import InvalidArgument

LABELS = {"app": "web", "tier": "front", "env": "prod"}


@pytest.mark.parametrize(("text", "matches"), [
    ("app=web", True), ("app==web", True), ("app!=web", False), ("app=db", False),
    ("app=web,tier!=db", True), ("tier!=db,app=db", False),
    ("env in (prod,staging)", True), ("env in(staging)", False),
    ("env notin (staging, dev)", True), ("env notin (prod)", False),
    ("app", True), ("canary", False), ("!canary", True), ("!app", False),
    ("missing!=x", True), ("missing notin (x)", True), ("missing in (x)", False),
    (" app = web , tier in ( front ) ", True),
    ("k8s.io/part-of=x", False), ("app.kubernetes.io/name", False),
])
def test_matches(text: str, matches: bool) -> None:
    assert parse(text).matches(LABELS) is matches


@pytest.mark.parametrize(("text", "position"), [
    ("app=web,,tier=db", 8),
    ("app in (a", 9),
    ("app foo", 4),
    ("=web", 0),
    ("app=we b", 7),
    ("app=-bad", 4),
    ("app=web,", 8),
    ("app in a", 7),
    ("Bad_Prefix/app=x", 0),
    ("", 0),
    ("a" * 64 + "=x", 0),
])
def test_syntax_errors_name_the_position(text: str, position: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(text)
    assert f"at position {position} " in err.value.message


def test_round_trip_text() -> None:
    assert str(parse("app==web, env in (a,b),!x,y")) == "app=web,env in (a,b),!x,y"
