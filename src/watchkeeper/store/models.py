"""Tables of the store. Changes here need an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

__all__ = [
    "alert_history", "alerts", "api_tokens", "check_results", "check_status", "chunks", "events", "metadata",
    "notification_attempts", "notification_log", "outbox", "run_steps", "runs", "samples",
    "series", "silences",
]

metadata = MetaData()


def _str(length: int) -> TypeEngine[str]:
    """VARCHAR(length) on SQLite, which does not enforce the length; TEXT on PostgreSQL
    (migration 0006), which would, so both keep the same values."""
    return String(length).with_variant(Text(), "postgresql")


# A 64-bit integer: BIGINT on PostgreSQL (migration 0006), INTEGER on SQLite, where it is
# 64-bit already and where only INTEGER PRIMARY KEY is the rowid (AUTOINCREMENT needs it).
_BIGINT = BigInteger().with_variant(Integer(), "sqlite")

# One row per labelled series. ``labels`` is the canonical JSON of the labels
# without __name__ (keys sorted), so equal label sets give equal text. Ids are
# never reused (AUTOINCREMENT on SQLite), so a cached id cannot come to mean
# another series after a deletion.
series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", _str(255), nullable=False),
    Column("labels", Text, nullable=False),
    UniqueConstraint("name", "labels", name="uq_series_name_labels"),
    sqlite_autoincrement=True,
)

# The head: recent raw samples, one row each, written as they arrive. The
# compactor moves older ones into ``chunks``. ts is milliseconds since the epoch;
# slot is ts // 120000. Keying by (slot, series_id, ts) keeps one scrape's rows
# on a few pages (a key led by series_id touches one page per series per commit:
# ten times slower ingest) while a read still seeks per (slot, series).
# value NULL stands for NaN: SQLite cannot store a NaN REAL. stale is true for
# Prometheus's staleness marker (a NaN too, so value is NULL) and NULL otherwise;
# a portable flag rather than NaN bits, which neither SQLite nor every driver keeps.
samples = Table(
    "samples",
    metadata,
    Column("slot", _BIGINT, primary_key=True, autoincrement=False),
    Column("series_id", Integer, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("value", Float, nullable=True),
    Column("stale", Boolean, nullable=True),
    sqlite_with_rowid=False,
)

# Compressed blocks of samples. tier 0 holds raw samples, tier 1 one-minute
# and tier 2 one-hour aggregates (see store/chunks.py for the encoding and
# store/retention.py for the tiers). start_ts/end_ts are the first and last
# timestamp (ms) in the chunk.
chunks = Table(
    "chunks",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("series_id", Integer, nullable=False),
    Column("tier", Integer, nullable=False),
    Column("start_ts", BigInteger, nullable=False),
    Column("end_ts", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_chunks_series_tier_end", "series_id", "tier", "end_ts"),
    Index("ix_chunks_tier_end", "tier", "end_ts"),
    sqlite_autoincrement=True,  # ids are never reused: readers cache decoded chunks by id
)

# Every result of every check run.
check_results = Table(
    "check_results",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("check", _str(200), nullable=False),
    Column("ts", Float, nullable=False),
    Column("state", Integer, nullable=False),
    Column("state_type", _str(4), nullable=False),  # SOFT or HARD
    Column("attempt", Integer, nullable=False),
    Column("summary", Text, nullable=False),
    Column("details", Text, nullable=False, default=""),
    Column("duration", Float, nullable=False),
    Index("ix_check_results_check_ts", "check", "ts"),
    Index("ix_check_results_ts", "ts"),
)

# The current state of each check, so a restart continues where it stopped.
check_status = Table(
    "check_status",
    metadata,
    Column("check", _str(200), primary_key=True),
    Column("type", _str(32), nullable=False),
    Column("state", Integer, nullable=False),
    Column("state_type", _str(4), nullable=False),
    Column("hard_state", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("since", Float, nullable=False),
    Column("last_run", Float, nullable=True),
    Column("summary", Text, nullable=False, default=""),
    Column("duration", Float, nullable=False, default=0.0),
    Column("flapping", Boolean, nullable=False, default=False),
    Column("recent", Text, nullable=False, default=""),  # recent states, one digit each
)

# The append-only, hash-chained event log.
events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", Float, nullable=False),
    Column("kind", _str(64), nullable=False),
    Column("actor", _str(200), nullable=False),
    Column("subject", _str(400), nullable=False),
    Column("data", Text, nullable=False),
    Column("prev_hash", _str(64), nullable=False),
    Column("hash", _str(64), nullable=False),
    Index("ix_events_kind_ts", "kind", "ts"),
)

# -- alerting (migration 0003) -------------------------------------------------------------

# Every alert instance watchkeeper knows now: from its rules, from checks, or sent
# to /api/v2/alerts. ``fingerprint`` is the hash of the label set (as Alertmanager's).
# Times are Unix seconds; JSON columns hold sorted objects.
alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", _str(16), primary_key=True),
    Column("source", _str(32), nullable=False),  # rule | check | api
    Column("rule", _str(400), nullable=True),  # "group/alertname" for rule alerts
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("state", _str(10), nullable=False),  # pending | firing | resolved
    Column("active_at", Float, nullable=False),
    Column("fired_at", Float, nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("last_seen", Float, nullable=False),
    Column("ends_at", Float, nullable=True),
    Column("keep_firing_since", Float, nullable=True),
    Column("value", Float, nullable=True),
    Column("generator_url", Text, nullable=False, default=""),
    Column("acked_by", _str(200), nullable=True),
    Column("acked_at", Float, nullable=True),
    Column("ack_comment", Text, nullable=True),
    Index("ix_alerts_state", "state"),
)

# Each state change of each alert, kept for history.
alert_history = Table(
    "alert_history",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("fingerprint", _str(16), nullable=False),
    Column("ts", Float, nullable=False),
    Column("state", _str(16), nullable=False),  # pending firing resolved acked unacked
    Column("labels", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_alert_history_fp_ts", "fingerprint", "ts"),
    Index("ix_alert_history_ts", "ts"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", _str(36), primary_key=True),
    Column("matchers", Text, nullable=False),  # JSON list of {name, value, isRegex, isEqual}
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("created_by", _str(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_silences_ends_at", "ends_at"),
)

# What was last notified per aggregation group and receiver, so a restart
# neither repeats nor forgets a notification (Alertmanager's notification log).
notification_log = Table(
    "notification_log",
    metadata,
    Column("group_key", Text, primary_key=True),
    Column("receiver", _str(200), primary_key=True),
    Column("firing", Text, nullable=False),  # JSON sorted fingerprints
    Column("resolved", Text, nullable=False),
    Column("sent_at", Float, nullable=False),
)

# The persistent outbox: every notification to deliver, retried with backoff.
outbox = Table(
    "outbox",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("receiver", _str(200), nullable=False),
    Column("integration", _str(64), nullable=False),  # e.g. webhook[0], email[1]
    Column("group_key", Text, nullable=False),
    Column("payload", Text, nullable=False),  # JSON the integration renders from
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("status", _str(10), nullable=False),  # pending | sent | dead
    Column("last_error", Text, nullable=True),
    Column("sent_at", Float, nullable=True),
    Index("ix_outbox_status_next", "status", "next_attempt_at"),
)

notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("outbox_id", _BIGINT, nullable=False),
    Column("ts", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("duration", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_notification_attempts_outbox", "outbox_id"),
)

# -- automation (migration 0004) -----------------------------------------------------------

# Every runbook run (and ad-hoc exec): who started it, how, with which params.
runs = Table(
    "runs",
    metadata,
    Column("id", _str(36), primary_key=True),
    Column("runbook", _str(200), nullable=False),  # name, or "exec" for ad-hoc commands
    Column("status", _str(16), nullable=False),  # pending running awaiting_approval ok failed
    #                                                 cancelled interrupted rejected
    Column("trigger", _str(16), nullable=False),  # cli api schedule alert
    Column("started_by", _str(200), nullable=False),
    Column("params", Text, nullable=False),  # JSON, secrets masked
    Column("targets", Text, nullable=False),  # JSON list of host names
    Column("check_mode", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("summary", Text, nullable=False, default=""),
    Column("alert", Text, nullable=True),  # JSON: the alert that triggered it
    Column("parent", _str(36), nullable=True),  # for runbook steps calling runbooks
    # the process executing the run (automation/run_owner.py) and its last heartbeat
    Column("owner_host", _str(255), nullable=True),
    Column("owner_pid", Integer, nullable=True),
    Column("owner_started", Float, nullable=True),
    Column("heartbeat_at", Float, nullable=True),
    Index("ix_runs_created", "created_at"),
    Index("ix_runs_status", "status"),
)

# One row per step per host of a run (and per approval wait).
run_steps = Table(
    "run_steps",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("run_id", _str(36), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("phase", _str(16), nullable=False),  # steps verify on_failure
    Column("step", _str(200), nullable=False),
    Column("host", _str(200), nullable=False),
    Column("status", _str(16), nullable=False),  # ok changed failed skipped unreachable timeout
    #                                                 running awaiting_approval
    Column("command", Text, nullable=False, default=""),  # masked
    Column("exit_code", Integer, nullable=True),
    Column("stdout", Text, nullable=False, default=""),
    Column("stderr", Text, nullable=False, default=""),
    Column("changed", Boolean, nullable=False, default=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("detail", Text, nullable=False, default=""),  # diff, approval decision, error
    Index("ix_run_steps_run", "run_id", "seq"),
)

# -- API tokens (migration 0007) -----------------------------------------------------------

# Named API tokens (auth.py): who a token belongs to and its roles. Only the token's
# SHA-256 is kept, never the token. Ids are never reused, so an id in the event log
# always means the same token.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("name", _str(200), nullable=False),  # the person or system it belongs to
    Column("roles", Text, nullable=False),  # JSON list of role names
    Column("token_sha256", _str(64), nullable=False),  # hex
    Column("created_at", Float, nullable=False),
    Column("created_by", _str(200), nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),  # written at most once a minute
    Column("revoked_at", Float, nullable=True),
    UniqueConstraint("token_sha256", name="uq_api_tokens_sha256"),
    Index("ix_api_tokens_name", "name"),
    sqlite_autoincrement=True,
)
