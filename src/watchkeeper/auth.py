"""Who is asking: API tokens, the identities they stand for, and their roles.

Two kinds of token say who sends a request to the server (or who runs a CLI command
that decides something directly on the data dir):

- **the main token** — ``server.token``, else ``$WATCHKEEPER_TOKEN`` when the server
  starts, else the data dir's ``token`` file (mode 0600, so only the server's user can
  read it). It stands for the identity ``admin``, which has every role (``*``).
- **named tokens** — rows of the ``api_tokens`` table, made by ``watchkeeper tokens
  create NAME --role ROLE`` or ``POST /api/v1/tokens``. A token is ``wk_`` followed by 32
  random bytes in URL-safe base64; it is shown once, when it is made. The store keeps its
  SHA-256 only (a 256-bit random secret needs no slow hash: nothing can be guessed from
  the digest), the name of the person or system it belongs to, its roles, who made it,
  when it expires, when it was last used and whether it was revoked.

An approval step's ``role`` is checked against the roles of the token that decides,
never against roles a request claims for itself; what a token's holder does is
recorded under the token's name.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, or_, select, update

from watchkeeper.clock import Clock, SystemClock
from watchkeeper.errors import AuthenticationError, ForbiddenError, InputError, NotFoundError
from watchkeeper.store.models import api_tokens

if TYPE_CHECKING:
    from watchkeeper.eventlog import EventLog

__all__ = [
    "ADMIN", "ADMIN_ROLE", "ALL_ROLES", "TOKEN_PREFIX", "UNKNOWN_TOKEN", "Identity", "TokenInfo",
    "TokenStore", "check_name", "check_roles", "hash_token", "identify", "require_role",
]

TOKEN_PREFIX = "wk_"
ALL_ROLES = "*"  # the main token's role set: every role
ADMIN_ROLE = "admin"  # may manage tokens
TOUCH_INTERVAL = 60.0  # last_used_at is written at most this often per token

# answered for a missing token and for one that matches nothing (the same words for both,
# so an answer tells nothing about which tokens exist)
UNKNOWN_TOKEN = ("missing or wrong API token; send 'Authorization: Bearer TOKEN' (the token is "
                 "in the data dir's 'token' file, or server.token / WATCHKEEPER_TOKEN)")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}")
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


@dataclass(frozen=True)
class Identity:
    """Who a token stands for: ``name`` (recorded as the actor), ``roles``, and the id of
    the named token (None for the main token, whose identity is ``admin``)."""

    name: str
    roles: frozenset[str]
    token_id: int | None = None

    def has_role(self, role: str) -> bool:
        return ALL_ROLES in self.roles or role in self.roles

    @property
    def is_admin(self) -> bool:
        return self.has_role(ADMIN_ROLE)

    def describe_roles(self) -> str:
        """``every role (*)``, ``dev, ops`` or ``no roles``: for messages."""
        if ALL_ROLES in self.roles:
            return "every role (*)"
        return ", ".join(sorted(self.roles)) or "no roles"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "roles": sorted(self.roles), "token_id": self.token_id}


ADMIN = Identity("admin", frozenset({ALL_ROLES}))


@dataclass(frozen=True)
class TokenInfo:
    """One named token as stored (never the secret)."""

    id: int
    name: str
    roles: tuple[str, ...]
    created_at: float
    created_by: str
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    def state(self, now: float) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "roles": list(self.roles),
                "state": self.state(now), "created_at": self.created_at,
                "created_by": self.created_by, "expires_at": self.expires_at,
                "last_used_at": self.last_used_at, "revoked_at": self.revoked_at}


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token``: what the store keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _when(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_name(name: str) -> str:
    """``name`` if it can name a token; InputError saying what is allowed otherwise."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise InputError(f"token name {name!r}: use 1-200 letters, digits and . _ @ + -, "
                         "starting with a letter or digit (the person or system it is for)")
    if name.isdigit():
        raise InputError(f"token name {name!r}: a name cannot be only digits (ids are)")
    if name == ADMIN.name:
        raise InputError("token name 'admin' is the main token's identity; name the token "
                         "for the person or system that holds it, and give it --role admin "
                         "if it is to manage tokens")
    return name


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """The roles, deduplicated and sorted; InputError for a malformed one or ``*``."""
    out = set()
    for role in roles:
        role = role.strip()
        if role == ALL_ROLES:
            raise InputError("role '*' (every role) belongs to the main token only; give the "
                             "roles the token needs by name")
        if not _ROLE.fullmatch(role):
            raise InputError(f"role {role!r}: use 1-64 letters, digits and . _ : -, starting "
                             "with a letter or digit")
        out.add(role)
    return tuple(sorted(out))


class TokenStore:
    """Named API tokens in the store: create, list, revoke, verify.

    ``eventlog``, when given, records ``token.created`` and ``token.revoked`` with who
    did it. Works on SQLite and PostgreSQL alike.
    """

    def __init__(self, engine: Engine, clock: Clock | None = None, *,
                 eventlog: EventLog | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.eventlog = eventlog

    @staticmethod
    def _from_row(r: Any) -> TokenInfo:
        return TokenInfo(int(r.id), r.name, tuple(json.loads(r.roles)), r.created_at,
                         r.created_by, r.expires_at, r.last_used_at, r.revoked_at)

    def _log(self, kind: str, info: TokenInfo, actor: str) -> None:
        if self.eventlog is not None:
            self.eventlog.append(kind, f"token/{info.id}", {
                "name": info.name, "roles": list(info.roles), "expires_at": info.expires_at,
            }, actor=actor)

    # -- writing ------------------------------------------------------------------------------
    def create(self, name: str, roles: Iterable[str], *, created_by: str,
               expires_in: float | None = None) -> tuple[str, TokenInfo]:
        """Make a token for ``name`` with ``roles``, valid for ``expires_in`` seconds (None:
        until revoked). Returns the token (the only time it is available) and its record.

        Raises InputError for a bad name, role or lifetime.
        """
        name = check_name(name)
        role_list = check_roles(roles)
        if expires_in is not None and not expires_in > 0:
            raise InputError("a token's lifetime must be positive (like 90d), or none")
        now = self.clock.time()
        expires_at = now + expires_in if expires_in is not None else None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            result = conn.execute(insert(api_tokens).values(
                name=name, roles=json.dumps(list(role_list)), token_sha256=hash_token(token),
                created_at=now, created_by=created_by, expires_at=expires_at))
            key = result.inserted_primary_key
            if key is None:  # pragma: no cover - every dialect we run on answers the id
                raise RuntimeError("the database did not answer the new token's id")
            token_id = int(key[0])
        info = TokenInfo(token_id, name, role_list, now, created_by, expires_at, None, None)
        self._log("token.created", info, created_by)
        return token, info

    def revoke(self, token_id: int, *, by: str) -> TokenInfo:
        """Revoke token ``token_id`` now. NotFoundError for an unknown id, InputError when it
        was revoked already."""
        now = self.clock.time()
        with self.engine.begin() as conn:
            n = conn.execute(update(api_tokens).where(api_tokens.c.id == token_id,
                                                      api_tokens.c.revoked_at.is_(None))
                             .values(revoked_at=now)).rowcount
        info = self.get(token_id)
        if not n:
            raise InputError(f"token {token_id} ({info.name}) was revoked already, at "
                             f"{_when(info.revoked_at or 0.0)}")
        self._log("token.revoked", info, by)
        return info

    def revoke_name(self, name: str, *, by: str) -> builtins.list[TokenInfo]:
        """Revoke every token of ``name`` that is not revoked yet (expired ones too, so they
        read as revoked). NotFoundError when there is none."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_tokens.c.id).where(
                api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .order_by(api_tokens.c.id)).all()
        ids: builtins.list[int] = [int(r.id) for r in rows]
        if not ids:
            raise NotFoundError(f"no unrevoked token named {name!r}",
                                hint="`watchkeeper tokens list` shows the tokens")
        return [self.revoke(i, by=by) for i in ids]

    # -- reading ------------------------------------------------------------------------------
    def get(self, token_id: int) -> TokenInfo:
        """Token ``token_id``; NotFoundError when there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"no token with id {token_id}",
                                hint="`watchkeeper tokens list` shows the tokens")
        return self._from_row(row)

    def list(self) -> builtins.list[TokenInfo]:
        """Every token, revoked and expired ones included, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.id)).all()
        return [self._from_row(r) for r in rows]

    def verify(self, token: str, *, unknown: str = UNKNOWN_TOKEN) -> Identity:
        """The identity of named token ``token``.

        Raises AuthenticationError: with ``unknown`` as the message when no token matches
        (nothing is said about other tokens), and saying so when the token matched but
        expired or was revoked. Records the use in ``last_used_at``, at most once a minute.
        """
        if not token.startswith(TOKEN_PREFIX):
            raise AuthenticationError(unknown)
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.token_sha256 == digest)).first()
        # the lookup is by digest already; comparing in constant time costs nothing more
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise AuthenticationError(unknown)
        info = self._from_row(row)
        now = self.clock.time()
        state = info.state(now)
        if state == "revoked":
            raise AuthenticationError(
                f"API token {info.id} ({info.name}) was revoked at {_when(info.revoked_at or 0.0)}",
                hint="ask an admin for a new one (`watchkeeper tokens create NAME --role ROLE`)")
        if state == "expired":
            raise AuthenticationError(
                f"API token {info.id} ({info.name}) expired at {_when(info.expires_at or 0.0)}",
                hint="ask an admin for a new one (`watchkeeper tokens create NAME --role ROLE "
                     "--expires 90d`)")
        if info.last_used_at is None or now - info.last_used_at >= TOUCH_INTERVAL:
            with self.engine.begin() as conn:
                conn.execute(update(api_tokens).where(
                    api_tokens.c.id == info.id,
                    or_(api_tokens.c.last_used_at.is_(None),
                        api_tokens.c.last_used_at <= now - TOUCH_INTERVAL))
                    .values(last_used_at=now))
        return Identity(info.name, frozenset(info.roles), info.id)


def identify(token: str | None, *, main_token: str | None, tokens: TokenStore | None,
             unknown: str = UNKNOWN_TOKEN) -> Identity:
    """The identity ``token`` stands for: the main token (compared in constant time) is
    :data:`ADMIN`; any other is looked up in ``tokens``.

    Raises AuthenticationError (``unknown`` as the message for a missing or unknown token;
    see :meth:`TokenStore.verify` for expired and revoked ones).
    """
    given = (token or "").strip()
    if not given:
        raise AuthenticationError(unknown)
    if main_token and hmac.compare_digest(given.encode(), main_token.encode()):
        return ADMIN
    if tokens is None:
        raise AuthenticationError(unknown)
    return tokens.verify(given, unknown=unknown)


def require_role(identity: Identity, role: str, what: str) -> None:
    """ForbiddenError unless ``identity`` has ``role``; the message names the role needed
    and the roles the identity has. ``what`` is the action (``manage API tokens``)."""
    if not identity.has_role(role):
        raise ForbiddenError(f"{what} needs the role {role!r}; {identity.name} has "
                             f"{identity.describe_roles()}",
                             hint=f"use a token with the role {role!r} (or the main token)")
