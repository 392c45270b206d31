"""Index check results by time, for retention of result history.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_check_results_ts", "check_results", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_check_results_ts", table_name="check_results")
