"""Capture groups: one selector, one capture per matching container (controller/groups.py).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capture_groups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("selector", sa.String(8192), nullable=False),
        sa.Column("spec", sa.String(8192), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("stopped", sa.Float, nullable=True),
        sa.Column("stop_reason", sa.String(255), nullable=False),
    )
    op.create_index("ix_capture_groups_owner", "capture_groups", ["owner"])
    op.create_table(
        "capture_group_members",
        sa.Column("group_id", sa.String(32), primary_key=True),
        sa.Column("workload_id", sa.String(255), primary_key=True),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("capture_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("pod", sa.String(253), nullable=False),
        sa.Column("container", sa.String(253), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("joined", sa.Float, nullable=False),
    )
    op.create_index("ix_capture_group_members_capture_id", "capture_group_members",
                    ["capture_id"])


def downgrade() -> None:
    op.drop_table("capture_group_members")
    op.drop_table("capture_groups")
