"""Opening the store: SQLite in WAL mode, migrations, a data dir from an older version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from watchkeeper.errors import StorageError
from watchkeeper.store.engine import current_revision, migrate, open_engine, sqlite_url


def test_new_data_dir_is_created_at_the_newest_revision(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path / "d")
    assert current_revision(engine) == "0007"
    assert (tmp_path / "d" / "watchkeeper.db").exists()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_data_dir_of_an_older_version_is_migrated_on_open(tmp_path: Path) -> None:
    old = create_engine(sqlite_url(tmp_path))
    migrate(old, "0001")
    with old.begin() as conn:
        conn.exec_driver_sql("INSERT INTO check_results (\"check\", ts, state, state_type, attempt,"
                             " summary, details, duration) VALUES ('web', 1.0, 0, 'HARD', 1, 'ok', '', 0.1)")
    assert "ix_check_results_ts" not in {i["name"] for i in inspect(old).get_indexes("check_results")}
    old.dispose()
    engine = open_engine(None, tmp_path)
    assert current_revision(engine) == "0007"
    assert "ix_check_results_ts" in {i["name"] for i in inspect(engine).get_indexes("check_results")}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT summary FROM check_results").scalar() == "ok"
    engine.dispose()


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="cannot create data dir .*file/sub"):
        open_engine(None, blocker / "sub")


def test_corrupt_database_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "watchkeeper.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="watchkeeper.db"):
        open_engine(None, tmp_path)


def test_sqlite_file_is_usable_by_other_tools(tmp_path: Path) -> None:
    open_engine(None, tmp_path).dispose()
    names = {r[0] for r in sqlite3.connect(tmp_path / "watchkeeper.db").execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"series", "samples", "chunks", "check_results", "check_status", "events"} <= names


def test_migrations_build_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from watchkeeper.store.models import metadata

    engine = open_engine(None, tmp_path)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_two_processes_opening_a_new_data_dir_at_once_both_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from watchkeeper.store.engine import open_engine;"
            " open_engine(None, Path(sys.argv[1])).dispose()")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "d")],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
