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


def test_round_trip_of_every_operator() -> None:
    text = "a=1,b!=2,c in (x,y),d notin (z),e,!f,g="
    assert str(parse(text)) == text
    assert str(parse(" d  notin(z ,y) ")) == "d notin (z,y)"


def test_a_bare_key_before_a_comma_is_an_existence_test() -> None:
    assert parse("app,tier=front").matches(LABELS)
    assert not parse("canary,tier=front").matches(LABELS)


def test_an_empty_value_is_a_value() -> None:
    assert parse("app=").matches({"app": ""})
    assert not parse("app=").matches(LABELS)
    assert parse("app in (web,)").requirements[0].values == ("web", "")


@pytest.mark.parametrize(("text", "message"), [
    ("", "label selector '': at position 0 ('end of input'): empty selector: expected a "
         "label key"),
    ("   ", "label selector '   ': at position 3 ('end of input'): empty selector: expected a "
            "label key"),
    ("app in", "label selector 'app in': at position 6 ('end of input'): expected '(' after in"),
    ("app notin x", "label selector 'app notin x': at position 10 ('x'): expected '(' after "
                    "notin"),
    ("app foo", "label selector 'app foo': at position 4 ('foo'): expected an operator (=, ==, "
                "!=, in, notin)"),
    ("app (x)", "label selector 'app (x)': at position 4 ('(x)'): expected an operator (=, ==, "
                "!=, in, notin)"),
    ("app in (a b)", "label selector 'app in (a b)': at position 10 ('b)'): expected ',' or ')'"
                     " in the value list"),
    ("app=web tier=db", "label selector 'app=web tier=db': at position 8 ('tier=db'): expected "
                        "',' or the end of the selector"),
    ("=web", "label selector '=web': at position 0 ('=web'): expected a label key"),
    ("!=x", "label selector '!=x': at position 0 ('!=x'): expected a label key"),
    ("app in (", "label selector 'app in (': at position 8 ('end of input'): expected ',' or "
                 "')' in the value list"),
    ("Bad_Prefix/app=x", "label selector 'Bad_Prefix/app=x': at position 0 ('Bad_Prefix/a'): "
                         "label key prefix 'Bad_Prefix' is not a DNS subdomain"),
    ("/app=x", "label selector '/app=x': at position 0 ('/app=x'): label key prefix '' is not a "
               "DNS subdomain"),
    ("x" * 64 + "=1", f"label selector '{'x' * 64}=1': at position 0 ('xxxxxxxxxxxx'): label key "
                      f"'{'x' * 64}' is not a valid name (at most 63 of A-Z a-z 0-9 - _ . "
                      "starting and ending alphanumeric)"),
    ("app=-bad", "label selector 'app=-bad': at position 4 ('-bad'): label value '-bad' is not "
                 "valid (at most 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric)"),
])
def test_syntax_errors_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(text)
    assert err.value.message == message


def test_a_key_prefix_is_a_dns_subdomain_of_at_most_253_characters() -> None:
    prefix = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(prefix) == 253
    assert parse(f"{prefix}/app=x").matches({f"{prefix}/app": "x"})
    with pytest.raises(InvalidArgument, match="is not a DNS subdomain"):
        parse(f"e{prefix}/app=x")


def test_the_selector_length_is_bounded() -> None:
    at_limit = "x in (" + ",".join(["v"] * 509) + ")"
    assert len(at_limit) == 1024
    assert parse(at_limit).matches({"x": "v"})
    with pytest.raises(InvalidArgument) as err:
        parse(" " + at_limit)
    assert err.value.message == "label selector is 1025 characters; the maximum is 1024"
