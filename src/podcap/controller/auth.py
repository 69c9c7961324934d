"""Logins and tokens: who the caller is.

- **Logins** check the password (passwords.py) after the failed-login throttle (throttle.py:
  growing back-off, then a bounded lockout of the (name, address) pair, never of the name
  everywhere, that an admin or ``podcap user unlock --data-dir`` clears). An unknown user
  costs the same hash as a known one.
- **Tokens** are kept as SHA-256, end after an idle time and after an absolute lifetime, and
  every token of a user ends when its password, role, namespaces or right change (users.py).
  Expired tokens are deleted when found and on every login.

``Auth`` is the accounts (``Users``) with sessions on top: one object for the API to hold.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import delete, or_
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.audit import Audit
from podcap.controller.db import Token, User
from podcap.controller.passwords import hash_password, verify_password
from podcap.controller.principal import Principal
from podcap.controller.users import Users
from podcap.errors import ResourceExhausted, Unauthenticated

_BAD_LOGIN = "Authentication failed: wrong username or password"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth(Users):
    def __init__(self, sessions: sessionmaker, idle_timeout: int = limits.TOKEN_IDLE_TIMEOUT_S,
                 max_age: int = limits.TOKEN_MAX_AGE_S, audit: Audit | None = None) -> None:
        super().__init__(sessions, audit)
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self._purged = 0.0  # expired tokens are deleted on a login at most this often

    def login(self, username: str, password: str, source: str = "") -> tuple[str, Principal]:
        try:
            self.throttle.check(username, source)  # before any hash: a blocked try is free
        except ResourceExhausted as exc:
            self.audit.failed_login(username, source, exc.message)
            raise
        with self._sessions() as db:
            user = db.get(User, username)
        ok, rehash = verify_password(password, user.password_hash if user else self._decoy)
        if user is None or not ok:
            self.throttle.failed(username, source)
            self.audit.failed_login(username, source, "wrong username or password")
            raise Unauthenticated(_BAD_LOGIN)
        self.throttle.succeeded(username, source)
        self.audit.record("login", username=username, source=source)
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._sessions() as db, db.begin():
            if rehash:
                row = db.get(User, username)
                if row is not None:
                    row.password_hash = hash_password(password)
            db.add(Token(token_hash=_token_hash(token), username=username, last_used=now,
                         created=now))
        if now - self._purged > limits.TOKEN_PURGE_INTERVAL_S:
            self.purge_expired()
        return token, _principal(user, _token_hash(token), source)

    def logout(self, token: str, who: Principal | None = None) -> None:
        with self._sessions() as db, db.begin():
            db.execute(delete(Token).where(Token.token_hash == _token_hash(token)))
        if who is not None:
            self.audit.record("logout", username=who.username, source=who.source)

    def authenticate(self, token: str | None, source: str = "") -> Principal:
        if not token:
            raise Unauthenticated("Unauthorized: send the token from POST /v1/auth in the "
                                  "X-Auth-Token header")
        now = time.time()
        hashed = _token_hash(token)
        with self._sessions() as db, db.begin():
            row = db.get(Token, hashed)
            expired = row is not None and self._expired(row, now)
            user = db.get(User, row.username) if row is not None and not expired else None
            if user is not None and now - row.last_used > 10:  # type: ignore[union-attr]
                row.last_used = now  # type: ignore[union-attr]  # bounded writes
        if expired:  # deleted in its own transaction: the refusal below must not undo it
            with self._sessions() as db, db.begin():
                db.execute(delete(Token).where(Token.token_hash == hashed))
        if row is None or expired:
            raise Unauthenticated("Unauthorized: the token is unknown or expired; log in "
                                  "again")
        if user is None:
            raise Unauthenticated("Unauthorized: the user no longer exists")
        return _principal(user, hashed, source)

    def token_alive(self, token_hash: str) -> bool:
        """Whether the session ``token_hash`` still exists and has not expired."""
        with self._sessions() as db:
            row = db.get(Token, token_hash)
            return row is not None and not self._expired(row, time.time())

    def session_principal(self, token_hash: str, source: str = "") -> Principal | None:
        """Who the session ``token_hash`` is now; None when it ended or expired (a download
        ticket is redeemed as its session, by any replica: tickets.py)."""
        with self._sessions() as db:
            row = db.get(Token, token_hash)
            if row is None or self._expired(row, time.time()):
                return None
            user = db.get(User, row.username)
        return None if user is None else _principal(user, token_hash, source)

    def purge_expired(self) -> int:
        now = self._purged = time.time()
        with self._sessions() as db, db.begin():
            done = db.execute(delete(Token).where(or_(
                Token.last_used < now - self.idle_timeout, Token.created < now - self.max_age)))
        self.throttle.purge()
        return int(getattr(done, "rowcount", 0) or 0)

    def password_is_default(self, username: str) -> bool:
        """True while a password the server generated (printed once) is still in use."""
        with self._sessions() as db:
            row = db.get(User, username)
        return row is not None and row.password_changed == 0.0

    def _expired(self, row: Token, now: float) -> bool:
        return now - row.last_used > self.idle_timeout or now - row.created > self.max_age


def _principal(user: User, token_hash: str = "", source: str = "") -> Principal:
    spaces = frozenset(n for n in user.namespaces.split(",") if n)
    return Principal(user.username, user.role, spaces, bool(user.download), token_hash, source)
