"""Open the database: SQLite (WAL) in the data dir by default, any SQLAlchemy URL otherwise.

Opening always brings the schema to the newest Alembic revision, so a data dir
made by an older version is migrated on start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from watchkeeper.errors import StorageError

__all__ = ["current_revision", "default_data_dir", "migrate", "open_engine", "sqlite_url"]

MIGRATIONS = Path(__file__).parent / "migrations"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/watchkeeper``, or ``~/.local/share/watchkeeper``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "watchkeeper"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'watchkeeper.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_engine(url: str | None, data_dir: Path, *, migrate_schema: bool = True) -> Engine:
    """Create the engine for ``url`` (or SQLite in ``data_dir``) and migrate it.

    Raises StorageError naming the database when it cannot be opened or migrated.
    """
    if url is None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data dir {data_dir}: {exc.strerror}",
                               hint="pass --data-dir with a writable directory") from None
        url = sqlite_url(data_dir)
    try:
        engine = create_engine(url, future=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StorageError(f"cannot open database {url}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate_schema:
        if engine.dialect.name == "sqlite" and url == sqlite_url(data_dir):
            with _migration_lock(data_dir):
                migrate(engine)
        else:
            migrate(engine)
    return engine


@contextmanager
def _migration_lock(data_dir: Path) -> Iterator[None]:
    """Serialize migrations of one data dir: two processes opening a new data dir at once
    (a server and a CLI command) must not both create the schema."""
    import fcntl

    with open(data_dir / ".migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``."""
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot migrate database {engine.url!r}: {exc}") from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
