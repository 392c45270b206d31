"""PostgreSQL: 64-bit ids and slots, unbounded strings. SQLite is left as it is.

SQLite's INTEGER is 64-bit and it does not enforce a VARCHAR's length; PostgreSQL's
INTEGER is 32-bit and VARCHAR(n) refuses longer text. So on PostgreSQL:

- the ids of tables that only grow (check results, chunks, alert history, the outbox,
  notification attempts, run steps) and their sequences become BIGINT: a thousand checks
  every ten seconds use up 2^31 check result ids in under a year, and ids are never reused;
- ``samples.slot`` (ts // 120000) becomes BIGINT, so every 64-bit millisecond timestamp fits;
- every VARCHAR(n) becomes TEXT, so a status such as ``awaiting_approval`` (17 characters
  in a VARCHAR(16)), a long check, metric or host name, is stored as on SQLite.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column) made BIGINT; those with a sequence (serial ids) have it widened too
_BIGINT = [
    ("samples", "slot", False),
    ("check_results", "id", True),
    ("chunks", "id", True),
    ("alert_history", "id", True),
    ("outbox", "id", True),
    ("notification_attempts", "id", True),
    ("notification_attempts", "outbox_id", False),
    ("run_steps", "id", True),
]

# every VARCHAR(n) column of revisions 0001-0005, with its length
_TEXT = {
    "series": {"name": 255},
    "check_results": {"check": 200, "state_type": 4},
    "check_status": {"check": 200, "type": 32, "state_type": 4},
    "events": {"kind": 64, "actor": 200, "subject": 400, "prev_hash": 64, "hash": 64},
    "alerts": {"fingerprint": 16, "source": 32, "rule": 400, "state": 10, "acked_by": 200},
    "alert_history": {"fingerprint": 16, "state": 16},
    "silences": {"id": 36, "created_by": 200},
    "notification_log": {"receiver": 200},
    "outbox": {"receiver": 200, "integration": 64, "status": 10},
    "runs": {"id": 36, "runbook": 200, "status": 16, "trigger": 16, "started_by": 200,
             "parent": 36, "owner_host": 255},
    "run_steps": {"run_id": 36, "phase": 16, "step": 200, "host": 200, "status": 16},
}


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    if not _postgresql():
        return
    bind = op.get_bind()
    for table, column, serial in _BIGINT:
        op.alter_column(table, column, type_=sa.BigInteger, existing_type=sa.Integer)
        if serial:
            seq = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table, "c": column}).scalar()
            if seq:
                op.execute(f"ALTER SEQUENCE {seq} AS bigint")
    for table, columns in _TEXT.items():
        for column, length in columns.items():
            op.alter_column(table, column, type_=sa.Text, existing_type=sa.String(length))


def downgrade() -> None:
    if not _postgresql():
        return
    bind = op.get_bind()
    for table, columns in _TEXT.items():
        for column, length in columns.items():
            op.alter_column(table, column, type_=sa.String(length), existing_type=sa.Text)
    for table, column, serial in _BIGINT:
        if serial:
            seq = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table, "c": column}).scalar()
            if seq:
                op.execute(f"ALTER SEQUENCE {seq} AS integer")
        op.alter_column(table, column, type_=sa.Integer, existing_type=sa.BigInteger)
