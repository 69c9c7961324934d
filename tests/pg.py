"""A private PostgreSQL for tests: its own cluster in a temp dir, a unix socket there, no TCP.

``private_postgres(tmp_dir)`` makes ``<tmp_dir>/podcap-pg-XXXX/`` with ``data/`` (the cluster,
``initdb``), ``sock/`` (the server's only socket: ``listen_addresses=''``), ``postgres.log`` and
``owner.lock``, starts the server with ``pg_ctl``, creates the database ``podcap`` and yields a
SQLAlchemy URL (``postgresql+psycopg://podcap:<random password>@/podcap?host=<sock dir>``).
On exit the server is stopped (``pg_ctl stop -m fast``, SIGKILL to its postmaster by PID if
that fails) and the directory removed.

Who runs it: ``initdb``, ``pg_ctl`` and ``postgres`` refuse to run as root. Run as root (the
usual case here, and on a fresh Debian 12), they run as the user ``nobody`` (group
``nogroup``), which every Debian system has, through subprocess's ``user=``/``group=``
(setuid/setgid before exec: no ``runuser``, ``sudo`` or new system user needed). So
``tmp_dir`` must be traversable by others (``/tmp`` is; pytest's ``tmp_path`` is not). As
another user they run as that user. Local connections need the password (scram-sha-256), and
the socket dir is ``nobody``'s and 0700, so other local users cannot reach the server.

Binaries: ``pg_ctl`` on PATH, else the newest ``/usr/lib/postgresql/*/bin`` (Debian's
layout; ``scripts/setup.sh`` installs ``postgresql`` when neither exists).

A run killed with SIGKILL cannot clean up: every run holds an flock on its ``owner.lock``
while it lives, and the next ``private_postgres`` in the same ``tmp_dir`` sweeps every
``podcap-pg-*`` dir whose lock it can take (its owner is dead): it kills that cluster's
postmaster by the PID in ``postmaster.pid`` (only if that process's command line names the
cluster's data dir), frees its shared memory and removes the dir. Live runs are left alone, so
several test sessions may run at once. ``python tests/pg.py`` starts one and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

DIR_PREFIX = "podcap-pg-"
SUPERUSER = "podcap"
DATABASE = "podcap"
UNPRIVILEGED = "nobody"
TIMEOUT_S = 60
STALE_UNLOCKED_S = 60.0  # a dir without owner.lock is a run killed right after mkdtemp


def pg_bin() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    if versions:
        return versions[-1].parent
    raise RuntimeError("PostgreSQL is not installed: no pg_ctl on PATH or in "
                       "/usr/lib/postgresql/*/bin (scripts/setup.sh installs postgresql)")


def _as_server_user() -> dict[str, Any]:
    """subprocess arguments that run a PostgreSQL binary as a user it accepts."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(UNPRIVILEGED)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "umask": 0o077}


def _owner_ids() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    user = pwd.getpwnam(UNPRIVILEGED)
    return user.pw_uid, user.pw_gid


def _run(argv: list[str], cwd: Path, timeout: float = TIMEOUT_S) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, **_as_server_user())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")


@contextlib.contextmanager
def private_postgres(tmp_dir: Path) -> Iterator[str]:
    """A running private PostgreSQL in a new dir under ``tmp_dir``; yields a SQLAlchemy URL
    of an empty database. Always stopped and removed on exit (see the module docstring)."""
    bindir = pg_bin()
    sweep_stale(tmp_dir)
    run_dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=tmp_dir))
    lock = open(run_dir / "owner.lock", "w")  # held until the very end
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        run_dir.chmod(0o755)  # the server user must reach data/ and sock/
        data, sock = run_dir / "data", run_dir / "sock"
        uid, gid = _owner_ids()
        for sub in (data, sock):
            sub.mkdir(mode=0o700)
            os.chown(sub, uid, gid)
        password = secrets.token_hex(16)
        pwfile, log = run_dir / "pwfile", run_dir / "postgres.log"
        pwfile.write_text(password + "\n")
        log.touch()
        for path in (pwfile, log):
            path.chmod(0o600)
            os.chown(path, uid, gid)
        _run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"], cwd=run_dir)
        pwfile.unlink()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = ''\nunix_socket_directories = '{sock}'\n"
                       "unix_socket_permissions = 0700\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "shared_buffers = '32MB'\nmax_connections = 100\n")
        try:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                  "-w", "-t", str(TIMEOUT_S), "start"], cwd=run_dir, timeout=TIMEOUT_S + 10)
            with psycopg.connect(host=str(sock), user=SUPERUSER, password=password,
                                 dbname="postgres", autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
            yield (f"postgresql+psycopg://{SUPERUSER}:{password}@/{DATABASE}"
                   f"?host={sock}")
        finally:
            _stop(bindir, data, run_dir)
    finally:
        _remove(run_dir)
        lock.close()


def new_database(url: str) -> str:
    """A fresh empty database on the server of ``url`` (from ``private_postgres``); its URL."""
    match = re.fullmatch(r"postgresql\+psycopg://([^:]+):([^@]+)@/([^?]+)\?host=(.+)", url)
    if match is None:
        raise ValueError(f"not a private_postgres URL: {url}")
    user, password, _, host = match.groups()
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(host=host, user=user, password=password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://{user}:{password}@/{name}?host={host}"


def sweep_stale(tmp_dir: Path) -> None:
    """Stop and remove clusters of runs that died (their owner.lock is free)."""
    for stale in tmp_dir.glob(DIR_PREFIX + "*"):
        lock_path = stale / "owner.lock"
        if not lock_path.exists():
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > STALE_UNLOCKED_S:
                    _kill_postmaster(stale / "data")
                    _remove(stale)
            continue
        try:
            lock = open(lock_path)
        except OSError:
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run owns it
            _kill_postmaster(stale / "data")
            _remove(stale)


def _stop(bindir: Path, data: Path, run_dir: Path) -> None:
    try:
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"],
             cwd=run_dir, timeout=40)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        if (data / "postmaster.pid").exists():
            print(f"pg.py: pg_ctl stop failed, killing the postmaster: {exc}", file=sys.stderr)
            _kill_postmaster(data)


def _kill_postmaster(data: Path) -> None:
    """SIGKILL the postmaster of ``data`` by the PID in its postmaster.pid (checked against
    its command line), wait for it, and free its System V shared memory segment."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        argv = []
    if str(data).encode() not in argv:
        return  # gone already (or the PID is another process now): nothing of ours runs
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # not our child (pg_ctl daemonised it): poll, not wait
    time.sleep(0.5)  # its backends notice the postmaster's death and exit
    # The segment id is only trusted while its postmaster was alive a moment ago.
    fields = lines[6].split() if len(lines) > 6 else []  # "<shm key> <shm id>"
    if len(fields) == 2 and fields[1].isdigit():
        subprocess.run(["ipcrm", "-m", fields[1]], capture_output=True, check=False)


def _remove(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


def _stop_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the context manager's teardown


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_signal)
    with private_postgres(Path(tempfile.gettempdir())) as url:
        print(f"PostgreSQL: {url}  (Ctrl-C or SIGTERM stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
