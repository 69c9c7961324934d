"""SQLite holds one controller: a second one on the same database file is refused at start.

Two controllers on one SQLite file would each believe they run alone: both would run the
background work (group members started twice, retention deleting twice), each would hold only
the agents that dialled it, and SQLite's own locking is not made for two servers writing all
day. So the controller takes an exclusive ``flock`` on ``<database>.lock`` for as long as it
runs (released by the kernel when the process dies, however it dies) and a second one stops
with a message that says why and what to use instead: PostgreSQL (docs/CLUSTER.md,
*Several controllers*). ``podcap user unlock --data-dir`` takes no lock: it is for the host
while the server runs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from podcap.errors import FailedPrecondition

_held: list[IO[str]] = []  # the open lock files: kept for the life of the process


def sqlite_path(url: str | None, data_dir: Path) -> Path | None:
    """The SQLite database file ``url`` names (the data dir's by default); None for a server
    database or an in-memory one."""
    if url is None:
        return data_dir / "podcap.db"
    if not url.startswith("sqlite"):
        return None
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def hold_single_controller(url: str | None, data_dir: Path) -> Path | None:
    """Take the lock of the SQLite database (nothing for PostgreSQL); FailedPrecondition,
    naming the holder's pid, when another controller has it. The lock file's path."""
    database = sqlite_path(url, data_dir)
    if database is None:
        return None
    path = database.with_name(database.name + ".lock")
    handle = open(path, "a+")  # noqa: SIM115 - held open until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise FailedPrecondition(
            f"another podcap controller (pid {holder}) already uses the SQLite database "
            f"{database}: SQLite holds one controller. To run several replicas, give every "
            "one the same PostgreSQL database (--database-url / PODCAP_DATABASE_URL="
            "postgresql+psycopg://USER:PASSWORD@HOST/DB; docs/CLUSTER.md, Several "
            "controllers); else stop the other one first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held.append(handle)
    return path
