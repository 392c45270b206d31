"""Named API tokens with roles (watchkeeper.auth): only each token's SHA-256 is stored.

Types follow models.py: TEXT and BIGINT on PostgreSQL (as revision 0006 made the
other tables), VARCHAR and INTEGER (64-bit, the rowid) on SQLite.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _str(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("name", _str(200), nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("token_sha256", _str(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", _str(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("last_used_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_api_tokens_sha256"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_api_tokens_name", "api_tokens", ["name"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_name", table_name="api_tokens")
    op.drop_table("api_tokens")
