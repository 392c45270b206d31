"""Alembic environment: the engine is handed in by store.engine.migrate.

On PostgreSQL the whole upgrade runs under a transaction-scoped advisory lock, so
two processes opening a new database at once (a server and a CLI command, or two
servers) migrate it one after the other; SQLite data dirs use a file lock instead
(store/engine.py).
"""

from alembic import context
from sqlalchemy import text

from watchkeeper.store.models import metadata

_LOCK_KEY = 0x77_6B_6D_69_67  # "wkmig": one advisory lock id for watchkeeper's migrations

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
