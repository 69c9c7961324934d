"""Fixtures over real parts: one `podcap serve` and one pair of talking containers per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, WebPair, running_server, web_pair


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("serve")) as srv:
        yield srv


@pytest.fixture(scope="module")
def pair() -> Iterator[WebPair]:
    with web_pair() as p:
        yield p


# Databases: every behaviour that touches the controller's database runs on SQLite and on a
# private PostgreSQL (tests/pg.py). Imports are local so tests without a database need neither.
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One private PostgreSQL for the session (as ``nobody`` when run as root; see pg.py)."""
    import tempfile
    from pathlib import Path

    from tests.pg import private_postgres

    with private_postgres(Path(tempfile.gettempdir())) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty database of each kind: a new SQLite file, or a new database on the session's
    PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'podcap.db'}"
    from tests.pg import new_database

    return new_database(request.getfixturevalue("postgres_url"))
