"""Flight recorders: recorders, their snapshots, their triggers (controller/recorders.py).
New tables only: no existing one changes.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recorders",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("selector", sa.String(8192), nullable=False),
        sa.Column("spec", sa.String(8192), nullable=False),
        sa.Column("window_s", sa.Integer, nullable=False),
        sa.Column("after_s", sa.Integer, nullable=False),
        sa.Column("cooldown_s", sa.Integer, nullable=False),
        sa.Column("max_snapshots", sa.Integer, nullable=False),
        sa.Column("rate_pps", sa.Integer, nullable=False),
        sa.Column("drops_per_s", sa.Integer, nullable=False),
        sa.Column("alerts", sa.String(8192), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_recorders_owner", "recorders", ["owner"])
    op.create_table(
        "recorder_snapshots",
        sa.Column("capture_id", sa.String(32), primary_key=True),
        sa.Column("recorder_id", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("workload_id", sa.String(255), nullable=False),
        sa.Column("workload_name", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("triggered", sa.Float, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_recorder_snapshots_recorder_id", "recorder_snapshots", ["recorder_id"])
    op.create_table(
        "recorder_triggers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorder_id", sa.String(32), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("workload_id", sa.String(255), nullable=False),
        sa.Column("workload_name", sa.String(255), nullable=False),
        sa.Column("capture_id", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
    )
    op.create_index("ix_recorder_triggers_recorder_id", "recorder_triggers", ["recorder_id"])
    op.create_index("ix_recorder_triggers_time", "recorder_triggers", ["time"])
    op.create_index("ix_recorder_triggers_key", "recorder_triggers", ["key"])


def downgrade() -> None:
    op.drop_table("recorder_triggers")
    op.drop_table("recorder_snapshots")
    op.drop_table("recorders")
