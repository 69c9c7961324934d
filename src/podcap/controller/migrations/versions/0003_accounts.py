"""Accounts and audit: the download right, password age, absolute token lifetime, login
failures, the audit log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("download", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("created", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("password_changed", sa.Float, nullable=False,
                                   server_default="0"))
    # Before 0003 an admin read everything and a reader read everything but packet data was
    # theirs too: keep what each could do.
    op.execute("UPDATE users SET download = true")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("download", server_default=None)
        batch.alter_column("created", server_default=None)
        batch.alter_column("password_changed", server_default=None)
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("created", sa.Float, nullable=False, server_default="0"))
    op.execute("UPDATE tokens SET created = last_used")
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("created", server_default=None)
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure", sa.Float, nullable=False),
        sa.Column("blocked_until", sa.Float, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("capture_id", sa.String(32), nullable=False),
        sa.Column("workload", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
    )
    op.create_index("ix_audit_time", "audit", ["time"])
    op.create_index("ix_audit_event", "audit", ["event"])
    op.create_index("ix_audit_username", "audit", ["username"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("login_failures")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("created")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_changed")
        batch.drop_column("created")
        batch.drop_column("download")
