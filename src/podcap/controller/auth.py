"""Users, roles, tokens and logins.

- **Roles**: ``admin`` (everything, every namespace), ``operator`` (captures in its
  namespaces), ``reader`` (captures and counters, no packet data); the ``download`` right reads
  packet data (an admin always has it). A user scoped to namespaces sees nothing else.
- **Passwords**: argon2id; scrypt hashes of earlier releases still verify and are rehashed to
  argon2id on the next good login. An unknown user costs the same hash as a known one, and at
  most ``HASH_SLOTS`` hashes run at once (each holds ``ARGON2_MEMORY_KIB``).
- **Failed logins** are counted per (user name, source address) and per source address
  (controller/throttle.py): growing back-off, then a bounded lockout of the pair (never of the
  name everywhere) that an admin, or ``podcap user unlock --data-dir`` on the host, clears.
- **Tokens** are kept as SHA-256, end after an idle time and after an absolute lifetime, and
  every token of a user ends when its password, role, namespaces or right change. Expired
  tokens are deleted when found and on every login.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass

import argon2
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.audit import Audit
from podcap.controller.db import Token, User
from podcap.controller.throttle import Throttle
from podcap.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)

log = logging.getLogger("podcap.auth")
ROLES = ("admin", "operator", "reader")
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a Kubernetes namespace name
_HASHER = argon2.PasswordHasher(time_cost=limits.ARGON2_TIME_COST,
                                memory_cost=limits.ARGON2_MEMORY_KIB, parallelism=1)
_HASH_SLOTS = threading.BoundedSemaphore(limits.HASH_SLOTS)
_BAD_LOGIN = "Authentication failed: wrong username or password"


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    namespaces: frozenset[str] = frozenset()  # empty: every namespace
    download: bool = False
    token_hash: str = ""  # the session this principal came from ("" when none)
    source: str = ""  # the client's address, for the audit log

    def can_see(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    @property
    def may_download(self) -> bool:
        return self.role == "admin" or self.download

    def require_admin(self) -> None:
        if self.role != "admin":
            raise PermissionDenied(f"user {self.username} (role {self.role}) is not an admin",
                                   self.username)

    def require_write(self) -> None:
        if self.role not in ("admin", "operator"):
            raise PermissionDenied(f"user {self.username} (role {self.role}) may only read",
                                   self.username)

    def require_download(self) -> None:
        if not self.may_download:
            raise PermissionDenied(f"user {self.username} has no download right: packet data "
                                   "needs it (an admin grants it: podcap user set NAME "
                                   "--download)", self.username)


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    namespaces: tuple[str, ...]
    download: bool
    created: float
    password_changed: float
    locked: bool
    failures: int


def hash_password(password: str) -> str:
    with _HASH_SLOTS:
        return _HASHER.hash(password)


def verify_password(password: str, stored: str) -> tuple[bool, bool]:
    """(matches, should be rehashed). Always one full hash, whatever ``stored`` holds."""
    with _HASH_SLOTS:
        if stored.startswith("scrypt$"):
            try:
                _, salt, digest = stored.split("$")
                candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt),
                                           n=2**14, r=8, p=1)
            except ValueError:
                return False, False
            return hmac.compare_digest(candidate.hex(), digest), True
        try:
            _HASHER.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, False
        return True, _HASHER.check_needs_rehash(stored)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    def __init__(self, sessions: sessionmaker, idle_timeout: int = limits.TOKEN_IDLE_TIMEOUT_S,
                 max_age: int = limits.TOKEN_MAX_AGE_S, audit: Audit | None = None) -> None:
        self._sessions = sessions
        self.audit = audit or Audit(sessions)
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.throttle = Throttle(sessions)
        self._purged = 0.0  # expired tokens are deleted on a login at most this often
        # An unknown user is checked against this, so it costs what a known one costs.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    # ---- users --------------------------------------------------------------------------

    def bootstrap_admin(self, password: str | None) -> str | None:
        """Create ``admin`` on first start. Returns the generated password (to print once) when
        none was given; never a fixed default."""
        with self._sessions() as db:
            if db.get(User, "admin") is not None:
                return None
        generated = None if password else secrets.token_urlsafe(15)
        self.add_user("admin", password or generated or "", "admin", download=True)
        if generated:  # a password the server chose is a default one until changed
            with self._sessions() as db, db.begin():
                row = db.get(User, "admin")
                if row is not None:
                    row.password_changed = 0.0
        return generated

    def add_user(self, username: str, password: str, role: str,
                 namespaces: tuple[str, ...] = (), download: bool = False,
                 by: Principal | None = None) -> UserInfo:
        _check_username(username)
        _check_role(role, namespaces)
        _check_password(password)
        hashed = hash_password(password)
        now = time.time()
        with self._sessions() as db, db.begin():
            if db.get(User, username) is not None:
                raise AlreadyExists(f"user {username} exists; change it with PATCH "
                                    f"/api/users/{username} (podcap user set)")
            db.add(User(username=username, password_hash=hashed, role=role,
                        namespaces=",".join(sorted(set(namespaces))),
                        download=download or role == "admin", created=now,
                        password_changed=now))
        info = self.user(username)
        self._record("user.add", by, info)
        return info

    def users(self) -> list[UserInfo]:
        with self._sessions() as db:
            rows = list(db.scalars(select(User).order_by(User.username)))
        states = self.throttle.user_states([r.username for r in rows])
        return [_info(r, *states.get(r.username, (False, 0))) for r in rows]

    def user(self, username: str) -> UserInfo:
        with self._sessions() as db:
            row = db.get(User, username)
        if row is None:
            raise NotFound(f"user {username} not found")
        locked, failures = self.throttle.user_states([username]).get(username, (False, 0))
        return _info(row, locked, failures)

    def update_user(self, username: str, *, role: str | None = None,
                    namespaces: tuple[str, ...] | None = None,
                    download: bool | None = None, by: Principal | None = None) -> UserInfo:
        """Change role, namespaces or the download right; the user's tokens end."""
        with self._sessions() as db, db.begin():
            row = db.get(User, username)
            if row is None:
                raise NotFound(f"user {username} not found")
            new_role = row.role if role is None else role
            new_spaces = tuple(n for n in row.namespaces.split(",") if n) \
                if namespaces is None else namespaces
            _check_role(new_role, new_spaces)
            if row.role == "admin" and new_role != "admin":
                _keep_an_admin(db, username)
            row.role = new_role
            row.namespaces = ",".join(sorted(set(new_spaces)))
            row.download = (row.download if download is None else download) or \
                new_role == "admin"
            db.execute(delete(Token).where(Token.username == username))
        info = self.user(username)
        self._record("user.change", by, info)
        return info

    def set_password(self, username: str, password: str, by: Principal | None = None) -> None:
        """A new password; every token of the user ends (also the caller's own)."""
        _check_password(password)
        hashed = hash_password(password)
        with self._sessions() as db, db.begin():
            row = db.get(User, username)
            if row is None:
                raise NotFound(f"user {username} not found")
            row.password_hash = hashed
            row.password_changed = time.time()
            db.execute(delete(Token).where(Token.username == username))
        self._record("user.password", by, None, f"user {username}")

    def check_password(self, username: str, password: str) -> bool:
        with self._sessions() as db:
            row = db.get(User, username)
        ok, _ = verify_password(password, row.password_hash if row else self._decoy)
        return ok and row is not None

    def remove_user(self, username: str, by: Principal | None = None) -> None:
        with self._sessions() as db, db.begin():
            row = db.get(User, username)
            if row is None:
                raise NotFound(f"user {username} not found")
            if row.role == "admin":
                _keep_an_admin(db, username)
            db.delete(row)
            db.execute(delete(Token).where(Token.username == username))
        self.throttle.clear_user(username)
        self._record("user.remove", by, None, f"user {username}")

    def unlock(self, username: str, by: Principal | None = None) -> None:
        self.user(username)  # NotFound for an unknown name
        self.throttle.clear_user(username)
        self._record("user.unlock", by, None, f"user {username}")

    def _record(self, event: str, by: Principal | None, info: UserInfo | None,
                detail: str = "") -> None:
        if info is not None:
            detail = (f"user {info.username}: role {info.role}, namespaces "
                      f"{','.join(info.namespaces) or '(all)'}, download "
                      f"{'yes' if info.download else 'no'}")
        self.audit.record(event, username=by.username if by else "",
                          source=by.source if by else "", detail=detail)

    # ---- sessions -----------------------------------------------------------------------

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


def _info(row: User, locked: bool, failures: int) -> UserInfo:
    return UserInfo(row.username, row.role, tuple(n for n in row.namespaces.split(",") if n),
                    bool(row.download) or row.role == "admin", row.created,
                    row.password_changed, locked, failures)


def _check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise InvalidArgument("user name: 1-64 characters, letters, digits and . _ @ -, "
                              "starting with a letter or digit")


def _check_role(role: str, namespaces: tuple[str, ...]) -> None:
    if role not in ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}")
    if role == "admin" and namespaces:
        raise InvalidArgument("an admin has every namespace; scope an operator or a reader")
    for name in namespaces:
        if not NAMESPACE.fullmatch(name):
            raise InvalidArgument(f"namespace {name!r} is not a Kubernetes namespace name")


def _check_password(password: str) -> None:
    if len(password) < limits.PASSWORD_MIN_CHARS:
        raise InvalidArgument(f"password must have at least {limits.PASSWORD_MIN_CHARS} "
                              "characters")
    if len(password) > limits.PASSWORD_MAX_CHARS:
        raise InvalidArgument(f"password must have at most {limits.PASSWORD_MAX_CHARS} "
                              "characters")


def _keep_an_admin(db: object, leaving: str) -> None:
    others = db.scalars(select(User.username).where(  # type: ignore[attr-defined]
        User.role == "admin", User.username != leaving)).first()
    if others is None:
        raise FailedPrecondition(f"{leaving} is the last admin; make another admin first")
