"""Named API tokens (watchkeeper.auth): create, verify, revoke, expire, on SQLite and on a
real PostgreSQL; only the SHA-256 is stored; the main token is ``admin`` with every role;
the data dir's ``token`` file stays 0600."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from watchkeeper.auth import (
    ADMIN,
    TOKEN_PREFIX,
    UNKNOWN_TOKEN,
    Identity,
    TokenStore,
    hash_token,
    identify,
    require_role,
)
from watchkeeper.errors import (
    AuthenticationError,
    ForbiddenError,
    InputError,
    NotFoundError,
)
from watchkeeper.eventlog import EventLog
from watchkeeper.server import read_or_create_token
from watchkeeper.store.engine import open_engine
from watchkeeper.store.models import api_tokens
from watchkeeper.testing import FakeClock

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    eng = open_engine(url, tmp_path / "data")
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(engine: Engine, clock: FakeClock) -> TokenStore:
    return TokenStore(engine, clock, eventlog=EventLog(engine, clock=clock))


def test_create_returns_the_token_once_and_verify_gives_its_identity(store: TokenStore) -> None:
    token, info = store.create("alice", ["ops", "approver", "ops"], created_by="admin")
    assert re.fullmatch(r"wk_[A-Za-z0-9_-]{43}", token)  # 32 random bytes, URL-safe base64
    assert (info.name, info.roles, info.created_by, info.created_at) == (
        "alice", ("approver", "ops"), "admin", T0)
    assert (info.expires_at, info.last_used_at, info.revoked_at) == (None, None, None)
    assert info.to_dict(T0) == {"id": info.id, "name": "alice", "roles": ["approver", "ops"],
                                "state": "active", "created_at": T0, "created_by": "admin",
                                "expires_at": None, "last_used_at": None, "revoked_at": None}
    assert "token" not in info.to_dict(T0) and token not in json.dumps(info.to_dict(T0))
    who = store.verify(token)
    assert who == Identity("alice", frozenset({"approver", "ops"}), info.id)
    assert who.has_role("ops") and not who.has_role("admin") and not who.is_admin
    other, info2 = store.create("ci-deploy", [], created_by="admin")
    assert other != token and info2.id > info.id
    assert store.verify(other).describe_roles() == "no roles"
    assert [t.name for t in store.list()] == ["alice", "ci-deploy"]


def test_only_the_hash_is_stored(store: TokenStore, engine: Engine, tmp_path: Path) -> None:
    token, info = store.create("alice", ["ops"], created_by="admin")
    with engine.connect() as conn:
        row = conn.execute(select(api_tokens)).one()
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
    assert token not in " ".join(str(v) for v in row)
    if engine.dialect.name == "sqlite":
        engine.dispose()  # everything checkpointed into the file; then read every byte
        raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("watchkeeper.db*"))
        assert token.encode() not in raw
        assert token[len(TOKEN_PREFIX):].encode() not in raw
        assert hash_token(token).encode() in raw


def test_last_used_is_written_at_most_once_a_minute(store: TokenStore, clock: FakeClock) -> None:
    token, info = store.create("alice", ["ops"], created_by="admin")
    store.verify(token)
    assert store.get(info.id).last_used_at == T0
    clock.advance(59)
    store.verify(token)
    assert store.get(info.id).last_used_at == T0  # no write for this request
    clock.advance(1)
    store.verify(token)
    assert store.get(info.id).last_used_at == T0 + 60


def test_revoke_by_id_and_by_name(store: TokenStore, clock: FakeClock) -> None:
    a, info_a = store.create("alice", ["ops"], created_by="admin")
    b1, _ = store.create("bob", ["dev"], created_by="admin")
    b2, _ = store.create("bob", ["ops"], created_by="admin")
    clock.advance(10)
    revoked = store.revoke(info_a.id, by="admin")
    assert (revoked.revoked_at, revoked.state(clock.time())) == (T0 + 10, "revoked")
    with pytest.raises(AuthenticationError) as err:
        store.verify(a)
    assert err.value.message == (f"API token {info_a.id} (alice) was revoked at "
                                 "2023-11-14 22:13:30 UTC")
    assert err.value.http_status == 401
    with pytest.raises(InputError, match="was revoked already"):
        store.revoke(info_a.id, by="admin")
    with pytest.raises(NotFoundError, match="no token with id 999"):
        store.revoke(999, by="admin")
    assert [t.roles for t in store.revoke_name("bob", by="admin")] == [("dev",), ("ops",)]
    for t in (b1, b2):
        with pytest.raises(AuthenticationError, match=r"\(bob\) was revoked at"):
            store.verify(t)
    with pytest.raises(NotFoundError, match="no unrevoked token named 'bob'"):
        store.revoke_name("bob", by="admin")
    assert {t.state(clock.time()) for t in store.list()} == {"revoked"}


def test_expiry(store: TokenStore, clock: FakeClock) -> None:
    token, info = store.create("ci", ["deploy"], created_by="admin", expires_in=90 * 86400)
    assert info.expires_at == T0 + 90 * 86400
    clock.advance(90 * 86400 - 1)
    assert store.verify(token).name == "ci"
    clock.advance(1)
    with pytest.raises(AuthenticationError) as err:
        store.verify(token)
    assert err.value.message == f"API token {info.id} (ci) expired at 2024-02-12 22:13:20 UTC"
    assert "tokens create" in (err.value.hint or "")
    assert store.get(info.id).state(clock.time()) == "expired"


def test_unknown_tokens_all_get_the_same_answer(store: TokenStore) -> None:
    token, _ = store.create("alice", ["ops"], created_by="admin")
    for given in ("", "wk_", token + "x", token[:-1], "nope", TOKEN_PREFIX + "A" * 43,
                  token.upper()):
        with pytest.raises(AuthenticationError) as err:
            identify(given, main_token="main-token-0123456789", tokens=store)
        assert err.value.message == UNKNOWN_TOKEN


def test_the_main_token_is_admin_with_every_role(store: TokenStore) -> None:
    assert identify(" main-token-0123456789\n", main_token="main-token-0123456789",
                    tokens=store) is ADMIN
    assert ADMIN == Identity("admin", frozenset({"*"}), None)
    assert ADMIN.has_role("approver") and ADMIN.is_admin
    assert ADMIN.describe_roles() == "every role (*)"
    with pytest.raises(AuthenticationError):
        identify("main-token-0123456789", main_token=None, tokens=None)
    with pytest.raises(AuthenticationError):
        identify(None, main_token="main-token-0123456789", tokens=store)


def test_require_role_names_the_role_and_what_the_identity_has() -> None:
    bob = Identity("bob", frozenset({"dev", "qa"}), 7)
    require_role(bob, "dev", "x")
    with pytest.raises(ForbiddenError) as err:
        require_role(bob, "admin", "managing API tokens")
    assert err.value.message == "managing API tokens needs the role 'admin'; bob has dev, qa"
    assert err.value.http_status == 403
    require_role(ADMIN, "anything", "x")


@pytest.mark.parametrize(("name", "roles", "expires", "message"), [
    ("", [], None, "token name ''"),
    ("al ice", [], None, "token name 'al ice'"),
    ("-x", [], None, "token name '-x'"),
    ("42", [], None, "cannot be only digits"),
    ("admin", [], None, "'admin' is the main token's identity"),
    ("a" * 201, [], None, "use 1-200"),
    ("alice", ["*"], None, "role '*' (every role) belongs to the main token only"),
    ("alice", ["o ps"], None, "role 'o ps'"),
    ("alice", [""], None, "role ''"),
    ("alice", ["ops"], 0, "lifetime must be positive"),
    ("alice", ["ops"], -5, "lifetime must be positive"),
])
def test_bad_input_is_refused(store: TokenStore, name: str, roles: list[str],
                              expires: float | None, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        store.create(name, roles, created_by="admin", expires_in=expires)
    assert store.list() == []


def test_the_event_log_records_who_made_and_revoked_tokens(store: TokenStore) -> None:
    token, info = store.create("alice", ["ops"], created_by="root-cli", expires_in=3600)
    store.revoke(info.id, by="carol")
    assert store.eventlog is not None
    got = [(e.kind, e.actor, e.subject, e.data) for e in store.eventlog.list(kind="token")]
    data = {"name": "alice", "roles": ["ops"], "expires_at": T0 + 3600}
    assert got == [("token.created", "root-cli", f"token/{info.id}", data),
                   ("token.revoked", "carol", f"token/{info.id}", data)]
    assert token not in json.dumps([e.to_dict() for e in store.eventlog.list()])
    assert store.eventlog.verify() == []


# -- the main token's file ---------------------------------------------------------------------
def test_the_token_file_is_made_0600_and_kept_so(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHKEEPER_TOKEN", raising=False)
    token = read_or_create_token(tmp_path, None)
    path = tmp_path / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token + "\n" and not token.startswith(TOKEN_PREFIX)
    os.chmod(path, 0o644)  # someone widened it
    assert read_or_create_token(tmp_path, None) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_token(tmp_path, "configured") == "configured"


def test_a_named_token_in_the_environment_is_not_the_main_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_TOKEN", "wk_" + "B" * 43)  # a user's own token
    token = read_or_create_token(tmp_path, None)
    assert token != "wk_" + "B" * 43 and (tmp_path / "token").read_text() == token + "\n"
    monkeypatch.setenv("WATCHKEEPER_TOKEN", "a-main-token-from-the-environment")
    assert read_or_create_token(tmp_path / "other", None) == "a-main-token-from-the-environment"
