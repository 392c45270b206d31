"""Alembic environment: the engine is handed in by store.engine.migrate."""

from alembic import context

from watchkeeper.store.models import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
