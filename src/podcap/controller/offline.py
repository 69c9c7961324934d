"""Recovery on the server's host, without logging in: ``podcap user unlock NAME --data-dir DIR``.

Why it exists: with one admin, a lock of that admin (or a forgotten session) would leave nobody
to unlock it through the API. Whoever can read the controller's database on its host already
holds everything the API guards, so reading it directly gives away nothing new; the file
permissions of the data dir (0700) are the check. The database is the one the server uses:
``--database-url`` / ``PODCAP_DATABASE_URL`` as for ``podcap serve``, else SQLite in the data
dir. It is opened as it is, never created or migrated (a wrong path must not leave an empty
database behind), and the unlock is audited like the API's, naming the host account.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from podcap.controller.audit import Audit
from podcap.controller.db import User
from podcap.controller.throttle import Throttle
from podcap.errors import NotFound, Unavailable


def unlock(username: str, data_dir: Path, database_url: str | None = None) -> int:
    """Clear every failed login and lock of ``username``; how many counts were cleared."""
    if not data_dir.is_dir():
        raise NotFound(f"no data dir {data_dir}: give the server's --data-dir "
                       "(PODCAP_DATA_DIR of `podcap serve` / `podcap controller`)")
    if database_url is None:
        path = data_dir / "podcap.db"
        if not path.is_file():
            raise NotFound(f"no database {path}: give the server's --data-dir, or its "
                           "--database-url (PODCAP_DATABASE_URL) when it uses PostgreSQL")
        database_url = f"sqlite:///{path}"
    engine = create_engine(database_url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        sessions = sessionmaker(engine, expire_on_commit=False)
        with sessions() as db:
            if db.get(User, username) is None:
                raise NotFound(f"user {username} not found in {where}")
        cleared = Throttle(sessions).clear_user(username)
        Audit(sessions, data_dir / "audit.jsonl").record(
            "user.unlock", username=f"host:{_host_account()}", source="host",
            detail=f"user {username}: failed logins and locks cleared on the host, without "
            "logging in (podcap user unlock --data-dir)")
        return cleared
    except SQLAlchemyError as exc:
        raise Unavailable(f"cannot use the database {where}: {type(exc).__name__}; is it the "
                          "server's, and is it running?") from exc
    finally:
        engine.dispose()


def _host_account() -> str:
    """The account that ran the command (``host:`` cannot start a podcap user name)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a container without a passwd entry for this uid
        return f"uid {os.getuid()}"
