"""One-time join tokens: what an agent shows once to get its certificate.

A token is ``<id>.<secret>.<ca fingerprint>``: the id (16 hex) finds the row, the secret
(32 hex, 128 bits) proves the holder, and the CA fingerprint (64 hex) lets the agent pin the
controller's join certificate before it trusts anything. The database keeps only the SHA-256 of
the secret, so a copied database joins no node. Each redeem consumes one use with a single
conditional UPDATE, so concurrent joins (several controller replicas on one PostgreSQL
included) never spend more uses than the token has.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import JoinToken
from podcap.errors import InvalidArgument, Unauthenticated

_TOKEN = re.compile(r"([0-9a-f]{16})\.([0-9a-f]{32})\.([0-9a-f]{64})")
_SHAPE = "<16 hex id>.<32 hex secret>.<64 hex CA fingerprint>"


@dataclass(frozen=True)
class IssuedToken:
    token: str  # "<id>.<secret>.<ca_fingerprint>", shown once: only its hash is stored
    expires: float
    uses: int


def parse(token: str) -> tuple[str, str, str]:
    """(id, secret, ca_fingerprint); InvalidArgument on a malformed token. The message never
    repeats the token: it is a secret and messages reach logs."""
    if not isinstance(token, str):
        raise InvalidArgument(f"a join token is text of the form {_SHAPE}")
    match = _TOKEN.fullmatch(token)
    if match is None:
        parts = token.split(".")
        hint = (f"it has {len(parts)} parts separated by '.', not 3" if len(parts) != 3 else
                "lengths are " + "/".join(str(len(p)) for p in parts) + ", not 16/32/64, or "
                "it has characters other than lowercase hex")
        raise InvalidArgument(f"malformed join token ({hint}): expected {_SHAPE}")
    token_id, secret, ca = match.groups()
    return token_id, secret, ca


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class JoinTokens:
    def __init__(self, sessions: sessionmaker, ca_fingerprint: str) -> None:
        self._sessions = sessions
        self._ca_fingerprint = ca_fingerprint

    def create(self, created_by: str, ttl_s: int = limits.JOIN_TOKEN_TTL_S_DEFAULT,
               uses: int = limits.JOIN_TOKEN_USES_DEFAULT) -> IssuedToken:
        """A new token valid ``ttl_s`` seconds for ``uses`` joins; InvalidArgument outside
        the limits in podcap.limits."""
        _check_range("ttl_s", ttl_s, limits.JOIN_TOKEN_TTL_S_MIN, limits.JOIN_TOKEN_TTL_S_MAX)
        _check_range("uses", uses, limits.JOIN_TOKEN_USES_MIN, limits.JOIN_TOKEN_USES_MAX)
        token_id, secret = secrets.token_hex(8), secrets.token_hex(16)
        now = time.time()
        expires = now + ttl_s
        with self._sessions() as db, db.begin():
            db.add(JoinToken(id=token_id, secret_hash=_hash(secret), created=now,
                             expires=expires, uses_left=uses, created_by=created_by[:64]))
        return IssuedToken(f"{token_id}.{secret}.{self._ca_fingerprint}", expires, uses)

    def redeem(self, token: str) -> None:
        """Consume one use, or raise Unauthenticated ("join token unknown" / "join token
        expired" / "join token used up", or a token of another controller). A malformed
        token raises parse's InvalidArgument, which says what is wrong with its shape."""
        token_id, secret, ca = parse(token)
        if not hmac.compare_digest(ca, self._ca_fingerprint):
            raise Unauthenticated("join token unknown: it was made by another controller "
                                  "(its CA fingerprint is not this controller's)")
        with self._sessions() as db:
            row = db.get(JoinToken, token_id)
            stored = row.secret_hash if row is not None else ""
        # Compare even when the id is unknown, so timing does not tell ids apart.
        if not hmac.compare_digest(stored or "0" * 64, _hash(secret)) or row is None:
            raise Unauthenticated("join token unknown")
        now = time.time()
        # One statement that checks and spends: it cannot interleave with another redeem
        # (SQLite serialises writers; PostgreSQL re-checks the WHERE on the row it locked).
        with self._sessions() as db, db.begin():
            spent = db.execute(
                update(JoinToken)
                .where(JoinToken.id == token_id, JoinToken.uses_left > 0,
                       JoinToken.expires > now)
                .values(uses_left=JoinToken.uses_left - 1)
                .execution_options(synchronize_session=False)).rowcount
        if spent == 1:
            return
        if row.expires <= now:
            raise Unauthenticated("join token expired")
        raise Unauthenticated("join token used up")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number")
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}")
