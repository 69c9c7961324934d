"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from podcap.controller.db import Base, open_db


def test_migrations_match_models(tmp_path) -> None:
    sessions = open_db(None, tmp_path)
    engine = sessions.kw["bind"]
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == "0001"
        assert compare_metadata(context, Base.metadata) == []
    open_db(None, tmp_path)  # a second start finds the schema current and changes nothing
