"""Several controller replicas on one database (issue 20): download tickets, leases, the
shared cluster CA, idempotent starts, the epoch that claimed a group member, and when a
replica stopped a capture.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "download_tickets",
        sa.Column("ticket_hash", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("ix_download_tickets_expires", "download_tickets", ["expires"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "cluster_ca",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cert_pem", sa.Text, nullable=False),
        sa.Column("key_pem", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "start_keys",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("capture_id", sa.String(32), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_start_keys_created", "start_keys", ["created"])
    with op.batch_alter_table("capture_group_members") as batch:
        batch.add_column(sa.Column("claim_epoch", sa.BigInteger, nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("capture_owners") as batch:
        batch.add_column(sa.Column("stopped", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("capture_owners") as batch:
        batch.drop_column("stopped")
    with op.batch_alter_table("capture_group_members") as batch:
        batch.drop_column("claim_epoch")
    op.drop_table("start_keys")
    op.drop_table("cluster_ca")
    op.drop_table("leases")
    op.drop_table("download_tickets")
