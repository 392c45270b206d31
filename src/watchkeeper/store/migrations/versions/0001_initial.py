"""Initial schema: series, samples, chunks, check results and status, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.UniqueConstraint("name", "labels", name="uq_series_name_labels"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "samples",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),  # ts // 120000
        sa.Column("series_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Float, nullable=True),  # NULL = NaN
        sa.Column("stale", sa.Boolean, nullable=True),  # true: a staleness marker (value NULL)
        sqlite_with_rowid=False,
    )
    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("tier", sa.Integer, nullable=False),
        sa.Column("start_ts", sa.BigInteger, nullable=False),
        sa.Column("end_ts", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_chunks_series_tier_end", "chunks", ["series_id", "tier", "end_ts"])
    op.create_index("ix_chunks_tier_end", "chunks", ["tier", "end_ts"])
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check", sa.String(200), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("state_type", sa.String(4), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
    )
    op.create_index("ix_check_results_check_ts", "check_results", ["check", "ts"])
    op.create_table(
        "check_status",
        sa.Column("check", sa.String(200), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("state_type", sa.String(4), nullable=False),
        sa.Column("hard_state", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("last_run", sa.Float, nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("flapping", sa.Boolean, nullable=False),
        sa.Column("recent", sa.Text, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_kind_ts", "events", ["kind", "ts"])


def downgrade() -> None:
    for name in ("events", "check_status", "check_results", "chunks", "samples", "series"):
        op.drop_table(name)
