"""Users and tokens. Passwords are stored as scrypt hashes; tokens as SHA-256 of the token,
so a copied database opens no session."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import Token, User
from podcap.errors import InvalidArgument, PermissionDenied, Unauthenticated

log = logging.getLogger("podcap.auth")
ROLES = ("admin", "reader")


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    namespaces: frozenset[str] = frozenset()  # empty: every namespace

    def can_see(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    def require_admin(self) -> None:
        if self.role != "admin":
            raise PermissionDenied(f"user {self.username} (role {self.role}) is not an admin")

    def require_write(self) -> None:
        if self.role != "admin":
            raise PermissionDenied(f"user {self.username} (role {self.role}) may only read")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate.hex(), digest)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    def __init__(self, sessions: sessionmaker, idle_timeout: int = limits.TOKEN_IDLE_TIMEOUT_S):
        self._sessions = sessions
        self.idle_timeout = idle_timeout

    def bootstrap_admin(self, password: str | None) -> str | None:
        """Create ``admin`` on first start. Returns the generated password (to print once) when
        none was given; never a fixed default."""
        with self._sessions() as db:
            if db.get(User, "admin") is not None:
                return None
        generated = None if password else secrets.token_urlsafe(15)
        self.add_user("admin", password or generated or "", "admin")
        return generated

    def add_user(self, username: str, password: str, role: str,
                 namespaces: tuple[str, ...] = ()) -> None:
        if role not in ROLES:
            raise InvalidArgument(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise InvalidArgument("password must have at least 8 characters")
        with self._sessions() as db, db.begin():
            db.merge(User(username=username, password_hash=hash_password(password), role=role,
                          namespaces=",".join(namespaces)))

    def login(self, username: str, password: str) -> tuple[str, Principal]:
        with self._sessions() as db:
            user = db.get(User, username)
        if user is None or not verify_password(password, user.password_hash):
            raise Unauthenticated("Authentication failed: wrong username or password")
        token = secrets.token_urlsafe(32)
        with self._sessions() as db, db.begin():
            db.add(Token(token_hash=_token_hash(token), username=username,
                         last_used=time.time()))
        return token, _principal(user)

    def logout(self, token: str) -> None:
        with self._sessions() as db, db.begin():
            db.execute(delete(Token).where(Token.token_hash == _token_hash(token)))

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("Unauthorized: send the token from POST /v1/auth in the "
                                  "X-Auth-Token header")
        now = time.time()
        with self._sessions() as db, db.begin():
            row = db.get(Token, _token_hash(token))
            if row is None or now - row.last_used > self.idle_timeout:
                if row is not None:
                    db.delete(row)
                raise Unauthenticated("Unauthorized: the token is unknown or expired; log in "
                                      "again")
            user = db.get(User, row.username)
            if user is None:
                raise Unauthenticated("Unauthorized: the user no longer exists")
            if now - row.last_used > 10:  # bound writes: idle time is coarse on purpose
                row.last_used = now
        return _principal(user)


def _principal(user: User) -> Principal:
    spaces = frozenset(n for n in user.namespaces.split(",") if n)
    return Principal(user.username, user.role, spaces)
