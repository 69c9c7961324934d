"""Join tokens on SQLite and PostgreSQL: one use per join, never more, even all at once."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import JoinToken, open_db
from podcap.controller.join_tokens import JoinTokens, parse
from podcap.errors import InvalidArgument, Unauthenticated

CA = "c" * 64
NO_DATABASE = JoinTokens(sessionmaker(), CA)  # any use of a session would fail


@pytest.fixture
def sessions(db_url: str, tmp_path) -> Iterator[sessionmaker]:
    made = open_db(db_url, tmp_path)
    yield made
    made.kw["bind"].dispose()


@pytest.fixture
def tokens(sessions: sessionmaker) -> JoinTokens:
    return JoinTokens(sessions, CA)


def test_create_and_redeem(tokens: JoinTokens, sessions: sessionmaker) -> None:
    before = time.time()
    issued = tokens.create("admin", ttl_s=600, uses=2)
    token_id, secret, ca = parse(issued.token)
    assert (len(token_id), len(secret), ca) == (16, 32, CA)
    assert issued.uses == 2 and before + 600 <= issued.expires <= time.time() + 600
    with sessions() as db:
        row = db.get(JoinToken, token_id)
    assert row is not None and row.created_by == "admin" and row.uses_left == 2
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()  # never the secret
    tokens.redeem(issued.token)
    tokens.redeem(issued.token)
    with pytest.raises(Unauthenticated, match="join token used up"):
        tokens.redeem(issued.token)


def test_single_use_token_is_refused_the_second_time(tokens: JoinTokens) -> None:
    issued = tokens.create("admin")
    assert issued.uses == 1
    tokens.redeem(issued.token)
    with pytest.raises(Unauthenticated, match="join token used up"):
        tokens.redeem(issued.token)


def test_expired_token_is_refused(tokens: JoinTokens, sessions: sessionmaker) -> None:
    issued = tokens.create("admin", ttl_s=60, uses=3)
    with sessions() as db, db.begin():  # an hour later, without waiting an hour
        db.execute(update(JoinToken).where(JoinToken.id == parse(issued.token)[0])
                   .values(expires=time.time() - 1))
    with pytest.raises(Unauthenticated, match="join token expired"):
        tokens.redeem(issued.token)


def test_unknown_wrong_secret_and_other_controller_are_refused(tokens: JoinTokens) -> None:
    token_id, secret, _ = parse(tokens.create("admin", uses=5).token)
    with pytest.raises(Unauthenticated, match="join token unknown"):
        tokens.redeem(f"{'0' * 16}.{secret}.{CA}")
    with pytest.raises(Unauthenticated, match="join token unknown"):
        tokens.redeem(f"{token_id}.{'0' * 32}.{CA}")
    with pytest.raises(Unauthenticated, match="another controller"):
        tokens.redeem(f"{token_id}.{secret}.{'d' * 64}")
    tokens.redeem(f"{token_id}.{secret}.{CA}")  # none of those spent a use


@pytest.mark.parametrize("bad,words", [
    ("", "1 parts"),
    ("abc", "1 parts"),
    ("a" * 16 + "." + "b" * 32, "2 parts"),
    ("a" * 16 + "." + "b" * 32 + "." + "c" * 64 + ".", "4 parts"),
    ("a" * 15 + "." + "b" * 32 + "." + "c" * 64, "15/32/64"),
    ("a" * 16 + "." + "b" * 33 + "." + "c" * 64, "16/33/64"),
    ("A" * 16 + "." + "b" * 32 + "." + "c" * 64, "lowercase hex"),
    ("g" * 16 + "." + "b" * 32 + "." + "c" * 64, "lowercase hex"),
    ("a" * 16 + "." + "b" * 32 + "." + "c" * 64 + "\n", "lowercase hex"),
    (" " + "a" * 16 + "." + "b" * 32 + "." + "c" * 64, "lowercase hex"),
])
def test_malformed_tokens_are_refused(bad: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words) as info:
        parse(bad)
    assert "b" * 32 not in info.value.message  # the secret never reaches a message
    with pytest.raises(InvalidArgument):
        NO_DATABASE.redeem(bad)  # refused before any database is asked


@pytest.mark.parametrize("kwargs,words", [
    ({"ttl_s": limits.JOIN_TOKEN_TTL_S_MIN - 1}, "ttl_s must be between 60 and 2592000"),
    ({"ttl_s": limits.JOIN_TOKEN_TTL_S_MAX + 1}, "ttl_s must be between"),
    ({"uses": 0}, "uses must be between 1 and 1000"),
    ({"uses": limits.JOIN_TOKEN_USES_MAX + 1}, "uses must be between"),
    ({"uses": True}, "uses must be a whole number"),
    ({"ttl_s": 60.5}, "ttl_s must be a whole number"),
])
def test_create_limits(kwargs: dict, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        NO_DATABASE.create("admin", **kwargs)  # refused before any database is asked


def test_concurrent_redeems_spend_exactly_the_uses(tokens: JoinTokens) -> None:
    issued = tokens.create("admin", uses=5)
    start = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def join() -> None:
        start.wait()
        try:
            tokens.redeem(issued.token)
            outcome = "joined"
        except Unauthenticated as exc:
            outcome = exc.message
        except Exception as exc:  # counted, so the assertion shows it
            outcome = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=join) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(set(outcomes)) == ["join token used up", "joined"], outcomes
    assert outcomes.count("joined") == 5
    assert len(outcomes) == 20


# ---- exact answers and edges (each is seen failing with its fault in: `make mutants`)

def refusal(tokens: JoinTokens, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        tokens.redeem(token)
    return info.value.message


def test_refusals_say_exactly_why(tokens: JoinTokens) -> None:
    token_id, secret, _ = parse(tokens.create("admin").token)
    assert refusal(tokens, f"{'0' * 16}.{secret}.{CA}") == "join token unknown"
    assert refusal(tokens, f"{token_id}.{'0' * 32}.{CA}") == "join token unknown"
    assert refusal(tokens, f"{token_id}.{secret}.{'d' * 64}") == (
        "join token unknown: it was made by another controller (its CA fingerprint is not "
        "this controller's)")


def test_parse_messages_name_the_shape_and_never_the_token() -> None:
    shape = "<16 hex id>.<32 hex secret>.<64 hex CA fingerprint>"
    with pytest.raises(InvalidArgument) as info:
        parse(None)  # type: ignore[arg-type]
    assert info.value.message == f"a join token is text of the form {shape}"
    with pytest.raises(InvalidArgument) as info:
        parse("a" * 15 + "." + "b" * 32 + "." + "c" * 64)
    assert info.value.message == (
        "malformed join token (lengths are 15/32/64, not 16/32/64, or it has characters other "
        f"than lowercase hex): expected {shape}")
    with pytest.raises(InvalidArgument) as info:
        parse("x.y")
    assert info.value.message == (
        f"malformed join token (it has 2 parts separated by '.', not 3): expected {shape}")


def test_a_token_expires_exactly_ttl_seconds_after_it_was_made(
        tokens: JoinTokens, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    issued = tokens.create("admin", ttl_s=60, uses=2)
    assert issued.expires == 1_800_000_060.0
    now[0] = 1_800_000_059.5
    tokens.redeem(issued.token)
    now[0] = 1_800_000_060.0
    assert refusal(tokens, issued.token) == "join token expired"


def test_a_redeem_spends_a_use_of_its_own_token_only(tokens: JoinTokens) -> None:
    first, second = tokens.create("admin"), tokens.create("admin")
    tokens.redeem(first.token)
    tokens.redeem(second.token)
    assert refusal(tokens, first.token) == "join token used up"


def test_the_limits_themselves_are_allowed(tokens: JoinTokens, sessions: sessionmaker) -> None:
    issued = tokens.create("x" * 100, ttl_s=limits.JOIN_TOKEN_TTL_S_MAX,
                           uses=limits.JOIN_TOKEN_USES_MAX)
    assert issued.uses == 1000
    tokens.create("admin", ttl_s=limits.JOIN_TOKEN_TTL_S_MIN, uses=limits.JOIN_TOKEN_USES_MIN)
    with sessions() as db:
        row = db.get(JoinToken, parse(issued.token)[0])
    assert row is not None and row.created_by == "x" * 64 and row.uses_left == 1000
