"""User accounts: add, change, remove, unlock, list; the last admin stays.

Any change to a user ends its tokens. Every change is audited with who made it.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from podcap.controller.audit import Audit
from podcap.controller.db import Token, User
from podcap.controller.passwords import check_rules, hash_password, verify_password
from podcap.controller.principal import ROLES, Principal
from podcap.controller.throttle import Throttle
from podcap.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a Kubernetes namespace name


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


class Users:
    def __init__(self, sessions: sessionmaker, audit: Audit | None = None) -> None:
        self._sessions = self.sessions = sessions
        self.audit = audit or Audit(sessions)
        self.throttle = Throttle(sessions)
        # An unknown user is checked against this, so it costs what a known one costs.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    def bootstrap_admin(self, password: str | None) -> str | None:
        """Create ``admin`` on first start. Returns the generated password (to print once) when
        none was given; never a fixed default."""
        with self._sessions() as db:
            if db.get(User, "admin") is not None:
                return None
        generated = None if password else secrets.token_urlsafe(15)
        try:
            self.add_user("admin", password or generated or "", "admin", download=True)
        except (AlreadyExists, IntegrityError):  # another replica, starting too, made it
            return None
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
        check_rules(password)
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
        check_rules(password)
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


def _keep_an_admin(db: object, leaving: str) -> None:
    others = db.scalars(select(User.username).where(  # type: ignore[attr-defined]
        User.role == "admin", User.username != leaving)).first()
    if others is None:
        raise FailedPrecondition(f"{leaving} is the last admin; make another admin first")
