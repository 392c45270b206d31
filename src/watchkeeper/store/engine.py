"""Open the database: SQLite (WAL) in the data dir by default, any SQLAlchemy URL otherwise.

Opening always brings the schema to the newest Alembic revision, so a data dir
made by an older version is migrated on start. PostgreSQL
(``postgresql+psycopg://user:password@host/db``, the ``postgres`` extra) is the
other supported database.

A URL may carry a password: every message shows it as :func:`display_url` does,
with the password replaced by ``***``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from watchkeeper.errors import StorageError

__all__ = ["current_revision", "default_data_dir", "display_url", "migrate", "open_engine", "sqlite_url"]

MIGRATIONS = Path(__file__).parent / "migrations"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/watchkeeper``, or ``~/.local/share/watchkeeper``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "watchkeeper"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'watchkeeper.db'}"


def display_url(url: str | URL) -> str:
    """``url`` as it may be shown in a log line, an error or an API answer: its password
    replaced by ``***``. A string that is not a valid URL is masked between ``:`` and ``@``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", url)


def _scrub(text: str, url: URL) -> str:
    """``text`` with the URL's password masked, should a driver ever echo it (a password of
    under four characters is left: masking it would garble the message more than it hides)."""
    if url.password and len(str(url.password)) >= 4:
        text = text.replace(str(url.password), "***")
    return text


def _db_error(action: str, url: URL, exc: Exception) -> StorageError:
    """A StorageError for a failed ``action`` on the database at ``url``, naming it without
    its password and saying what to check."""
    detail = str(getattr(exc, "orig", None) or exc).strip()
    hint = None
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or exc.statement is None):
        action = "connect to"
        hint = ("check storage.url: host, port, user, password and database name; keep the "
                "password out of the file with ${WK_DB_PASSWORD}")
    return StorageError(f"cannot {action} database {display_url(url)}: {_scrub(detail, url)}", hint=hint)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_engine(url: str | None, data_dir: Path, *, migrate_schema: bool = True) -> Engine:
    """Create the engine for ``url`` (or SQLite in ``data_dir``) and migrate it; ``data_dir``
    is created either way.

    Raises StorageError naming the database (never its password) when it cannot be
    opened, reached or migrated, or when ``data_dir`` cannot be created.
    """
    # the data dir holds more than SQLite's file (the token, the event log's anchor), so it
    # is made whichever database holds the tables
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create data dir {data_dir}: {exc.strerror}",
                           hint="pass --data-dir with a writable directory") from None
    if url is None:
        url = sqlite_url(data_dir)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StorageError(f"storage.url {display_url(url)!r} is not a database URL",
                           hint="use e.g. postgresql+psycopg://user:${WK_DB_PASSWORD}@host/db, or leave "
                                "it out for SQLite in the data dir") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() != "sqlite":
        # a database server restarts or drops idle connections: test each pooled
        # connection before use, so the first query afterwards does not fail
        kwargs["pool_pre_ping"] = True
    if parsed.get_backend_name() == "postgresql" and "application_name" not in parsed.query:
        kwargs["connect_args"] = {"application_name": "watchkeeper"}
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        hint = None
        if parsed.get_backend_name() == "postgresql":
            hint = "install the PostgreSQL driver: pip install 'watchkeeper[postgres]'"
        raise StorageError(f"cannot open database {display_url(parsed)}: driver missing ({exc})",
                           hint=hint) from None
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open database {display_url(parsed)}: {_scrub(str(exc), parsed)}") from None
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
        raise _db_error("migrate", engine.url, exc) from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
