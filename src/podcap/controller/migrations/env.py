"""Alembic environment: the controller passes its engine in ``config.attributes``."""

from alembic import context

from podcap.controller.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=True)  # SQLite alters tables by copying them
with context.begin_transaction():
    context.run_migrations()
