"""The Alembic migrations build exactly the schema the models describe, on every database."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from podcap.controller.auth import Auth
from podcap.controller.db import MIGRATIONS, Base, open_db


def test_migrations_match_models(db_url: str, tmp_path) -> None:
    sessions = open_db(db_url, tmp_path)
    engine = sessions.kw["bind"]
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == "0006"
        assert compare_metadata(context, Base.metadata) == []
    open_db(db_url, tmp_path).kw["bind"].dispose()  # a second start changes nothing
    engine.dispose()


def test_default_is_sqlite_in_the_data_dir(tmp_path) -> None:
    sessions = open_db(None, tmp_path)
    assert (tmp_path / "podcap.db").exists()
    sessions.kw["bind"].dispose()


def test_a_database_of_the_first_release_is_upgraded(db_url: str, tmp_path) -> None:
    engine = create_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    sessions = open_db(db_url, tmp_path)
    with sessions.kw["bind"].connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0006"
    sessions.kw["bind"].dispose()


def test_users_and_tokens_work_on_every_database(db_url: str, tmp_path) -> None:
    sessions = open_db(db_url, tmp_path)
    auth = Auth(sessions)
    assert auth.bootstrap_admin("correct horse") is None
    token, who = auth.login("admin", "correct horse")
    assert auth.authenticate(token) == who
    auth.logout(token)
    sessions.kw["bind"].dispose()
