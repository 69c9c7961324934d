"""SQLite holds one controller (controller/sqlite_lock.py): a second `podcap controller` on the
same database refuses to start and says why and what to use instead; once the first is gone,
a new one starts (the lock dies with its process, even with SIGKILL)."""

from __future__ import annotations

import secrets
import signal
import subprocess

from tests.support import PODCAP, Server, free_port


def test_a_second_controller_on_the_same_sqlite_refuses_to_start(tmp_path) -> None:
    data = tmp_path / "data"
    first = Server(data_dir=data, port=free_port(), password=secrets.token_urlsafe(12),
                   command="controller").start()
    try:
        second = subprocess.run(
            [PODCAP, "controller", "--insecure-http", "--listen", f"127.0.0.1:{free_port()}",
             "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        said = second.stderr + second.stdout
        assert f"another podcap controller (pid {first.pid}) already uses the SQLite " \
               f"database {data / 'podcap.db'}" in said, said
        assert "SQLite holds one controller" in said
        assert "PostgreSQL" in said and "PODCAP_DATABASE_URL" in said
        # The first is untouched by the refusal.
        with first.client() as c:
            assert c.get("/api/captures").status_code == 200
    finally:
        first.stop(signal.SIGKILL)
    again = Server(data_dir=data, port=free_port(), password=first.password,
                   command="controller").start()
    again.stop()
