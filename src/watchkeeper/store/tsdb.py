"""The time-series store on SQL: labelled series, a durable head, compressed tiers.

Writes land in the ``samples`` table (the *head*), one row per sample,
committed before ``append`` returns — there is no memory buffer a crash
could lose. ``compact`` moves head samples older than ``head_window`` into
raw chunks, one per series per clock hour (see ``store/chunks.py`` for the
encoding); ``apply_retention`` turns old raw chunks into one-minute and then
one-hour aggregates and finally deletes them (see ``store/retention.py``).
Both work in small transactions, so appends wait at most one batch.

Reads merge the head and the chunks of every tier. When the same timestamp
appears twice (a late sample, a backfill, a second chunk for an hour) the
later write wins: the head over chunks, a newer chunk over an older one, a
finer tier over a coarser one. Aggregate tiers read as their ``last`` value at
the bucket end, so counters stay correct for ``rate()``.

Staleness markers (:mod:`watchkeeper.staleness`) are stored as themselves: in
the head as a NULL value with ``stale`` set (SQLite keeps no NaN, let alone its
bits), in chunks bit for bit; downsampled buckets leave them out.

On SQLite the append path uses the DBAPI ``executemany`` directly (about ten
times faster than going through SQLAlchemy); on PostgreSQL a batch of head rows
is one INSERT of ``unnest``-ed arrays. Every other statement is SQLAlchemy Core,
so the same code runs on PostgreSQL (tests/test_postgres.py holds both to the
same answers). Writes are serialised by a lock; readers never take it (SQLite
runs in WAL mode, so they proceed during writes). On PostgreSQL, compaction
moves exactly the head rows it deletes, so a late sample another process
appends meanwhile is never lost.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, compress, groupby, pairwise, repeat
from operator import gt, itemgetter, sub, truediv
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select
from sqlalchemy import text as sql_text
from sqlalchemy.exc import SQLAlchemyError

from watchkeeper.clock import Clock, SystemClock
from watchkeeper.errors import InputError, StorageError
from watchkeeper.monitor.model import Sample
from watchkeeper.query.selector import Matcher, matches_all
from watchkeeper.staleness import STALE_NAN, is_stale, stale_mask
from watchkeeper.store import chunks as enc
from watchkeeper.store.models import chunks, samples, series
from watchkeeper.store.retention import (
    BUCKET_MS,
    TIER_HOUR,
    TIER_MINUTE,
    TIER_NAMES,
    TIER_RAW,
    WINDOW_MS,
    RetentionPolicy,
    downsample_aggregates,
    downsample_raw,
    merge_last_wins,
    window_end,
)

__all__ = ["TSDB", "AggregateData", "RetentionPolicy", "Row", "SeriesColumns", "SeriesData", "Tier"]

Tier = Literal["auto", "raw", "minute", "hour"]
#: One sample for :meth:`TSDB.append_rows`: (name, labels without __name__, seconds, value).
Row = tuple[str, Mapping[str, str], float, float]

_TIERS: dict[str, tuple[int, ...]] = {
    "auto": (TIER_RAW, TIER_MINUTE, TIER_HOUR),
    "raw": (TIER_RAW,),
    "minute": (TIER_MINUTE,),
    "hour": (TIER_HOUR,),
}
_IN_BATCH = 500  # ids per IN (...) list, well under every database's parameter limit
_NAN = math.nan
SLOT_MS = 120_000  # samples.slot = ts // SLOT_MS (see store/models.py)
_SLOT_LIST_MAX = 256  # read a head span of more slots with a range scan instead of seeks
_SQLITE_UPSERT = ("INSERT INTO samples (slot, series_id, ts, value, stale) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT (slot, series_id, ts) DO UPDATE SET value = excluded.value, "
                  "stale = excluded.stale")
_SQLITE_NEW_SERIES = "INSERT INTO series (name, labels) VALUES (?, ?) ON CONFLICT (name, labels) DO NOTHING"
_SQLITE_SERIES_ID = "SELECT id FROM series WHERE name = ? AND labels = ?"
_MATCH_CACHE_MAX = 4096  # selectors whose matches are remembered while the series index is unchanged
_EMPTY_MS = np.zeros(0, dtype=np.int64)
_EMPTY_VALUES = np.zeros(0, dtype=np.float64)
_NEWEST_SLOTS = 8  # a head span of up to this many slots is read newest slot first for newest samples
#: Samples of one series from one chunk or the head: (ms, values, first ms, last ms).
_Piece = tuple[np.ndarray, np.ndarray, int, int]


# PostgreSQL: one statement per batch, its columns as arrays (five parameters, whatever the
# batch size): several times faster than a row-per-sample executemany.
_PG_UPSERT = sql_text(
    "INSERT INTO samples (slot, series_id, ts, value, stale) "
    "SELECT * FROM unnest(CAST(:slot AS bigint[]), CAST(:series_id AS integer[]), CAST(:ts AS bigint[]), "
    "CAST(:value AS double precision[]), CAST(:stale AS boolean[])) "
    "ON CONFLICT (slot, series_id, ts) DO UPDATE SET value = excluded.value, stale = excluded.stale")


def _upsert_postgres(conn: Connection, params: list[dict[str, Any]]) -> None:
    """Write head rows on PostgreSQL in one statement. One statement may not update a row
    twice, so of samples for the same (series, ms) only the last is sent (it wins anyway)."""
    rows = list({(p["series_id"], p["ts"]): p for p in params}.values())
    conn.execute(_PG_UPSERT, {name: [p[name] for p in rows]
                              for name in ("slot", "series_id", "ts", "value", "stale")})


@lru_cache(maxsize=16)
def _steps(start: float, end: float, step: float) -> tuple[float, ...]:
    """The evaluation times of a range query; cached, as every series asks for the same."""
    if not step > 0:
        raise InputError(f"step must be positive, got {step!r}")
    if end < start:
        return ()
    n = int((end - start) / step + 1e-9) + 1
    # Floats, not ints: bisecting float timestamps with int keys is three times slower.
    start, step = float(start), float(step)
    return tuple([start + i * step for i in range(n)])


@dataclass(slots=True)
class SeriesData:
    """The samples of one series in a time range: ``labels`` include ``__name__``;
    ``timestamps`` are seconds, ascending and unique, one value each."""

    labels: dict[str, str]
    timestamps: list[float]
    values: list[float]

    def at_steps(self, start: float, end: float, step: float,
                 lookback: float = 300.0) -> tuple[list[float], list[float]]:
        """The value at each step ``start, start + step, ... <= end``: the newest sample
        in ``(t - lookback, t]``, as a Prometheus range query sees it (none when that
        sample is a staleness marker).

        Returns (step times, values) for the steps that have a value. Raises
        InputError when ``step`` is not positive.
        """
        steps = _steps(start, end, step)
        ts = self.timestamps
        # For each step t: i = number of samples <= t; the step has a value (sample
        # i - 1) when that sample is newer than t - lookback. Every loop here runs in C.
        upto = list(map(bisect_right, repeat(ts), steps))
        newest = map([-math.inf, *ts].__getitem__, upto)
        has = list(map(gt, newest, map(sub, steps, repeat(lookback))))
        out_t = list(compress(steps, has))
        out_v = list(map([math.nan, *self.values].__getitem__, compress(upto, has)))
        if any(v != v for v in out_v):
            keep = [not is_stale(v) for v in out_v]
            out_t, out_v = list(compress(out_t, keep)), list(compress(out_v, keep))
        return out_t, out_v


@dataclass(slots=True)
class SeriesColumns:
    """The samples of one series as arrays: ``ms`` (int64 milliseconds, ascending and
    unique) and ``values`` (float64), one each; ``labels`` include ``__name__`` and
    are shared with the store's cache: do not modify them."""

    labels: dict[str, str]
    ms: np.ndarray
    values: np.ndarray

    def at_steps(self, steps_ms: np.ndarray, lookback_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """The value at each step time ``t`` of ``steps_ms`` (ascending int64 ms): that of
        the newest sample in ``(t - lookback_ms, t]``, as Prometheus evaluates a selector.

        A step whose newest sample is a staleness marker has no value (the series ended).
        Returns (indices into ``steps_ms`` of the steps that have a value, those values).
        """
        ms = self.ms
        if not len(ms):
            return _EMPTY_MS, _EMPTY_VALUES
        upto = np.searchsorted(ms, steps_ms, side="right")  # samples <= t
        newest = ms[np.maximum(upto - 1, 0)]
        has = (upto > 0) & (newest > steps_ms - lookback_ms)
        if has.all():
            which, values = np.arange(len(steps_ms)), self.values[upto - 1]
        else:
            which = np.flatnonzero(has)
            values = self.values[upto[which] - 1]
        nan = np.isnan(values)
        if nan.any():
            live = ~(nan & stale_mask(values))
            which, values = which[live], values[live]
        return which, values


@dataclass(slots=True)
class AggregateData:
    """Per-bucket aggregates of one series, for ``*_over_time`` across tiers.

    A raw sample reads as a bucket of one (count 1, min = max = sum = last =
    value); a stored aggregate reads as it was downsampled. ``timestamps`` are
    seconds (a bucket's end).
    """

    labels: dict[str, str]
    timestamps: list[float]
    count: list[int]
    sum: list[float]
    min: list[float]
    max: list[float]
    last: list[float]


def _canonical(labels: Mapping[str, str]) -> str:
    # Prometheus treats an empty label as an absent one; __name__ lives in its own column.
    clean = {str(k): str(v) for k, v in labels.items() if k != "__name__" and v != ""}
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _ms_range(start: float, end: float) -> tuple[int, int]:
    return math.ceil(round(start * 1000, 6)), math.floor(round(end * 1000, 6))


def _batched(items: Sequence[int], size: int = _IN_BATCH) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _seconds(ts_ms: list[int]) -> list[float]:
    return list(map(truediv, ts_ms, repeat(1000)))


class _ChunkCache:
    """Decoded chunks by id, least recently used out first, bounded by samples held.

    Entries are (ms, values) arrays; those decoded together are views of one
    buffer, which lives until the last of them leaves the cache.

    Chunk rows never change and their ids are never reused (AUTOINCREMENT), so
    an entry cannot go stale; entries of deleted chunks simply age out.
    """

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.samples = 0
        self._items: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cid: int) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            hit = self._items.get(cid)
            if hit is not None:
                self._items.move_to_end(cid)
            return hit

    def get_many(self, cids: list[int]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """:meth:`get` of each id, under one acquisition of the lock."""
        with self._lock:
            items = self._items
            hits = list(map(items.get, cids))
            for cid, hit in zip(cids, hits, strict=True):
                if hit is not None:
                    items.move_to_end(cid)
            return hits

    def put(self, cid: int, entry: tuple[np.ndarray, np.ndarray]) -> None:
        self.put_many([(cid, entry)])

    def put_many(self, entries: list[tuple[int, tuple[np.ndarray, np.ndarray]]]) -> None:
        """:meth:`put` of each (id, entry), under one acquisition of the lock."""
        with self._lock:
            for cid, entry in entries:
                size = len(entry[0])
                if size > self.max_samples or cid in self._items:
                    continue
                self._items[cid] = entry
                self.samples += size
                while self.samples > self.max_samples:
                    _, old = self._items.popitem(last=False)
                    self.samples -= len(old[0])


class TSDB:
    """Series, samples and chunks in one SQL database (SQLite or PostgreSQL).

    ``head_window`` is how many seconds of recent samples stay in the head
    before ``compact`` packs them into hourly chunks. ``retention`` says how
    long each tier lives. All methods are safe to call from several threads;
    they raise StorageError (naming the database) when the database fails and
    InputError for bad arguments.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None,
                 retention: RetentionPolicy | None = None, head_window: float = 3600.0,
                 sqlite_fast_path: bool = True, batch_rows: int = 20_000,
                 batch_chunks: int = 256, cache_samples: int = 2_000_000) -> None:
        if not head_window >= 0:
            raise InputError(f"head_window={head_window!r} is invalid: use seconds >= 0")
        if batch_rows < 1 or batch_chunks < 1:
            raise InputError("batch_rows and batch_chunks must be at least 1")
        self.engine = engine
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.retention = retention if retention is not None else RetentionPolicy()
        self.head_window = float(head_window)
        self._dialect = engine.dialect.name
        self._fast = sqlite_fast_path and self._dialect == "sqlite"
        self._db = engine.url.render_as_string(hide_password=True)
        self._batch_rows = batch_rows
        self._batch_chunks = batch_chunks
        self._write_lock = threading.Lock()
        self._cache = _ChunkCache(cache_samples)
        # (name, raw label items) -> id, so appends do not query. Only grows under the write lock.
        self._ids: dict[tuple[str, frozenset[tuple[str, str]]], int] = {}
        # id -> labels with __name__; series rows never change, so this never goes stale.
        self._labels: dict[int, dict[str, str]] = {}
        # The series index: every series row, by name, in id order, so selecting does not
        # read the series table each time. It is checked against the table's (max id,
        # count) on every read: new rows (this process's appends or another's) are read
        # incrementally; a deletion anywhere changes the count and reloads it whole.
        self._index_lock = threading.Lock()
        self._by_name: dict[str, list[int]] = {}
        self._index_max = 0
        self._index_count = 0
        # matchers -> matched (id, labels); valid while the index is unchanged
        self._match_cache: dict[tuple[Matcher, ...], list[tuple[int, dict[str, str]]]] = {}

    # -- errors ---------------------------------------------------------------------------
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, sqlite3.Error) as exc:
            detail = getattr(exc, "orig", None) or exc
            hint = None
            if "locked" in str(detail) or "busy" in str(detail):
                hint = "another process holds a write lock on the database; retry, or stop it"
            raise StorageError(f"cannot {action} in database {self._db}: {detail}", hint=hint) from exc

    # -- writes ---------------------------------------------------------------------------
    def append(self, samples: Iterable[Sample], default_timestamp: float) -> int:
        """Store samples; one without a timestamp gets ``default_timestamp`` (seconds).

        Returns how many were written. A sample for a (series, timestamp) already
        stored replaces it. Durable when this returns.
        """
        return self.append_rows(
            (s.name, s.labels, default_timestamp if s.timestamp is None else s.timestamp, s.value)
            for s in samples)

    def append_rows(self, rows: Iterable[Row]) -> int:
        """Store (name, labels, seconds, value) rows; the fast path of :meth:`append`.

        ``labels`` exclude ``__name__``; empty label values are dropped, as
        Prometheus does. Timestamps are kept to the millisecond. Raises
        InputError for a row that is not a valid sample (the whole batch is
        then rolled back) and StorageError when the database fails.
        """
        with self._write_lock:
            if self._fast:
                return self._append_sqlite(rows)
            return self._append_core(rows)

    def _forget(self, keys: list[tuple[str, frozenset[tuple[str, str]]]]) -> None:
        for key in keys:
            self._ids.pop(key, None)

    def _append_sqlite(self, rows: Iterable[Row]) -> int:
        ids = self._ids
        new_keys: list[tuple[str, frozenset[tuple[str, str]]]] = []
        params: list[tuple[int, int, int, float | None, int | None]] = []
        add = params.append
        with self._errors("write samples"):
            conn = self.engine.raw_connection()
            try:
                cur = conn.cursor()
                row: Any = None
                try:
                    for row in rows:
                        name, labels, ts, value = row
                        key = (name, frozenset(labels.items()))
                        sid = ids.get(key)
                        if sid is None:
                            text = _canonical(labels)
                            cur.execute(_SQLITE_NEW_SERIES, (name, text))
                            sid = cur.execute(_SQLITE_SERIES_ID, (name, text)).fetchone()[0]
                            ids[key] = sid
                            new_keys.append(key)
                        v = float(value)
                        ms = round(ts * 1000)
                        if v == v:
                            add((ms // SLOT_MS, sid, ms, v, None))
                        else:  # SQLite stores a NaN as NULL: keep a stale marker apart
                            add((ms // SLOT_MS, sid, ms, None, 1 if is_stale(v) else None))
                except (TypeError, ValueError, OverflowError, AttributeError) as exc:
                    raise InputError(f"invalid sample {row!r}: {exc}",
                                     hint="a row is (name, labels, seconds, value)") from None
                if params:
                    cur.executemany(_SQLITE_UPSERT, params)
                conn.commit()
                cur.close()
            except BaseException:
                self._forget(new_keys)
                try:
                    conn.rollback()
                except sqlite3.Error:
                    pass
                raise
            finally:
                conn.close()
        return len(params)

    def _dialect_insert(self) -> Any:
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            return pg_insert
        if self._dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert
            return sqlite_insert
        if self._dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert
            return mysql_insert
        raise StorageError(f"database {self._db}: dialect {self._dialect!r} is not supported",
                           hint="use SQLite or PostgreSQL")

    def _append_core(self, rows: Iterable[Row]) -> int:
        ins = self._dialect_insert()
        if self._dialect in ("mysql", "mariadb"):
            new_series = ins(series).prefix_with("IGNORE")
            up = ins(samples)
            upsert = up.on_duplicate_key_update(value=up.inserted.value, stale=up.inserted.stale)
        else:
            new_series = ins(series).on_conflict_do_nothing(index_elements=["name", "labels"])
            up = ins(samples)
            upsert = up.on_conflict_do_update(index_elements=["slot", "series_id", "ts"],
                                              set_={"value": up.excluded.value,
                                                    "stale": up.excluded.stale})
        find = select(series.c.id).where(series.c.name == bindparam("n"), series.c.labels == bindparam("l"))
        ids = self._ids
        new_keys: list[tuple[str, frozenset[tuple[str, str]]]] = []
        params: list[dict[str, Any]] = []
        try:
            with self._errors("write samples"), self.engine.begin() as conn:
                row: Any = None
                try:
                    for row in rows:
                        name, labels, ts, value = row
                        key = (name, frozenset(labels.items()))
                        sid = ids.get(key)
                        if sid is None:
                            text = _canonical(labels)
                            conn.execute(new_series, {"name": name, "labels": text})
                            sid = conn.execute(find, {"n": name, "l": text}).scalar_one()
                            ids[key] = sid
                            new_keys.append(key)
                        v = float(value)
                        ms = round(ts * 1000)
                        params.append({"slot": ms // SLOT_MS, "series_id": sid, "ts": ms,
                                       "value": v if v == v else None,
                                       "stale": True if v != v and is_stale(v) else None})
                except (TypeError, ValueError, OverflowError, AttributeError) as exc:
                    raise InputError(f"invalid sample {row!r}: {exc}",
                                     hint="a row is (name, labels, seconds, value)") from None
                if params and self._dialect == "postgresql":
                    _upsert_postgres(conn, params)
                elif params:
                    conn.execute(upsert, params)
        except BaseException:
            self._forget(new_keys)
            raise
        return len(params)

    # -- series selection -----------------------------------------------------------------
    def _rows(self, conn: Connection, stmt: Any) -> list[Any]:
        """All rows of a Core select. On SQLite the compiled statement runs on the DBAPI
        cursor: SQLAlchemy's row objects cost more than the query for head reads."""
        if not self._fast:
            return list(conn.execute(stmt))
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.params
        args = [params[name] for name in compiled.positiontup or ()]
        driver = conn.connection.driver_connection
        if driver is None:  # pragma: no cover - only for a detached connection
            return list(conn.execute(stmt))
        return driver.execute(str(compiled), args).fetchall()  # type: ignore[no-any-return]

    def _refresh_index(self, conn: Connection) -> None:
        """Bring the series index up to date with the series table (see ``__init__``)."""
        row: Any = conn.execute(select(func.max(series.c.id), func.count()).select_from(series)).one()
        top, count = int(row[0] or 0), int(row[1] or 0)
        with self._index_lock:
            if top == self._index_max and count == self._index_count:
                return
            self._match_cache = {}
            if top > self._index_max and count > self._index_count:
                # new rows (ids only grow): read just those
                self._index_rows(self._rows(conn,
                    select(series.c.id, series.c.name, series.c.labels)
                    .where(series.c.id > self._index_max).order_by(series.c.id)))
                if self._index_count == count:
                    return
            # rows went away: read it all again
            rows = self._rows(conn, select(series.c.id, series.c.name, series.c.labels).order_by(series.c.id))
            self._by_name, self._index_max, self._index_count = {}, 0, 0
            alive = {int(r[0]) for r in rows}
            for sid in [sid for sid in self._labels if sid not in alive]:
                del self._labels[sid]
            self._index_rows(rows)

    def _index_rows(self, rows: Sequence[Any]) -> None:
        """Add series rows (id, name, labels) in id order to the index; under the index lock."""
        cache, by_name = self._labels, self._by_name
        top = self._index_max
        rows = [row for row in rows if int(row[0]) > top]
        new = [row for row in rows if int(row[0]) not in cache]
        # One json.loads over all label texts is five times faster than one per row.
        parsed = iter(json.loads("[" + ",".join([str(row[2]) for row in new]) + "]") if new else ())
        for row in rows:
            sid, sname = int(row[0]), str(row[1])
            if sid not in cache:
                cache[sid] = {"__name__": sname, **next(parsed)}
            by_name.setdefault(sname, []).append(sid)
        if rows:
            self._index_max = int(rows[-1][0])
            self._index_count += len(rows)

    def _match(self, conn: Connection, matchers: list[Matcher]) -> list[tuple[int, dict[str, str]]]:
        """(id, labels) of every series the matchers accept, in id order."""
        self._refresh_index(conn)
        key = tuple(matchers)
        with self._index_lock:
            hit = self._match_cache.get(key)
            if hit is not None:
                return hit
            name = next((m.value for m in matchers if m.name == "__name__" and m.op == "="), None)
            if name is not None:
                ids: Iterable[int] = self._by_name.get(name, ())
            else:
                ids = sorted(sid for group in self._by_name.values() for sid in group)
            cache = self._labels
            rest = [m for m in matchers if not (m.name == "__name__" and m.op == "=" and m.value == name)]
            out = [(sid, cache[sid]) for sid in ids if matches_all(rest, cache[sid])]
            if len(self._match_cache) >= _MATCH_CACHE_MAX:
                self._match_cache.clear()
            self._match_cache[key] = out
            return out

    def _chunk_rows(self, conn: Connection, ids: Sequence[int], lo: int, hi: int,
                    tiers: tuple[int, ...], every: bool = False) -> Iterator[Any]:
        """Chunk rows (series id, tier, id, first ms, last ms, data) overlapping [lo, hi]; with
        ``every``, of all series (the caller drops the others) in one statement instead of IN lists."""
        # Coarse tiers first and older chunks first: later items win a tie.
        for part in [None] if every else _batched(ids):
            where = [chunks.c.end_ts >= lo, chunks.c.start_ts <= hi, chunks.c.tier.in_(tiers)]
            if part is not None:
                where.append(chunks.c.series_id.in_(part))
            yield from self._rows(conn,
                select(chunks.c.series_id, chunks.c.tier, chunks.c.id, chunks.c.start_ts, chunks.c.end_ts,
                       chunks.c.data)
                .where(*where).order_by(chunks.c.series_id, chunks.c.tier.desc(), chunks.c.id))

    @staticmethod
    def _head_slots(conn: Connection, lo: int, hi: int) -> tuple[int, int] | None:
        """The first and last slot of the head rows in [lo, hi]; None when the head has nothing there."""
        # Two subqueries: SQLite answers a lone min() or max() from the index, both at once by a scan.
        row: Any = conn.execute(select(select(func.min(samples.c.slot)).scalar_subquery(),
                                       select(func.max(samples.c.slot)).scalar_subquery())).one()
        if row[0] is None:
            return None
        a, b = max(lo // SLOT_MS, int(row[0])), min(hi // SLOT_MS, int(row[1]))
        return None if a > b else (a, b)

    @classmethod
    def _head_span(cls, conn: Connection, lo: int, hi: int) -> list[Any] | None:
        """Conditions picking head rows in [lo, hi]: the slots as a list when few (one seek
        per slot and series), as a range otherwise; None when the head has nothing there."""
        slots = cls._head_slots(conn, lo, hi)
        if slots is None:
            return None
        a, b = slots
        slot = samples.c.slot.in_(range(a, b + 1)) if b - a < _SLOT_LIST_MAX else samples.c.slot.between(a, b)
        return [slot, samples.c.ts >= lo, samples.c.ts <= hi]

    def _head_rows(self, conn: Connection, ids: Sequence[int], lo: int, hi: int) -> Iterator[Any]:
        span = self._head_span(conn, lo, hi)
        if span is None:
            return
        for part in _batched(ids):
            yield from self._rows(conn, select(samples.c.series_id, samples.c.ts, samples.c.value,
                                               samples.c.stale)
                                  .where(*span, samples.c.series_id.in_(part))
                                  .order_by(samples.c.series_id, samples.c.ts))

    def _decode_cached(self, rows: Iterable[Any]) -> list[tuple[int, np.ndarray, np.ndarray, int, int]]:
        """(series id, ms, values, first ms, last ms) per chunk row, from the cache or
        decoded in one batch."""
        rows = list(rows)
        out: list[Any] = []
        pending: list[tuple[int, int]] = []  # (index in out, chunk id) of raw chunks to decode
        blobs: list[bytes] = []
        new: list[tuple[int, tuple[np.ndarray, np.ndarray]]] = []
        cache = self._cache
        for (sid, tier, cid, first, last, data), hit in zip(rows, cache.get_many([r[2] for r in rows]),
                                                            strict=True):
            if hit is None:
                if tier == TIER_RAW:
                    pending.append((len(out), cid))
                    blobs.append(data)
                    out.append((sid, _EMPTY_MS, _EMPTY_VALUES, first, last))
                    continue
                agg = enc.decode_aggregates(data)
                hit = (np.array(agg.timestamps, dtype=np.int64), np.array(agg.last, dtype=np.float64))
                new.append((cid, hit))
            out.append((sid, hit[0], hit[1], first, last))
        if pending:
            for (i, cid), entry in zip(pending, enc.decode_raw_chunks(blobs), strict=True):
                new.append((cid, entry))
                sid, _, _, first, last = out[i]
                out[i] = (sid, entry[0], entry[1], first, last)
        if new:
            cache.put_many(new)
        return out

    def _head_columns(self, conn: Connection, ids: Sequence[int], lo: int, hi: int,
                      every: bool) -> list[tuple[int, np.ndarray, np.ndarray, int, int]]:
        """(series id, ms, values, first ms, last ms) of the head samples in [lo, hi] of each
        series that has some, in id order.

        On SQLite rows come in key order (slot, series id, ts) without a sort in SQL; a
        stable sort by series id in NumPy then leaves each series' samples in time order.
        Other databases promise no order without ORDER BY (PostgreSQL returns heap order,
        which an updated row changes), so there the rows are sorted by (series id, ts).
        ``every`` says ``ids`` are all series, so no IN list is needed. The stale flag
        is read only when a value is NULL (NaN: SQLite keeps none), which is rare.
        """
        span = self._head_span(conn, lo, hi)
        if span is None:
            return []
        parts = [None] if every else list(_batched(ids))
        rows: list[Any] = []
        for part in parts:
            query = select(samples.c.series_id, samples.c.ts, samples.c.value).where(*span)
            if part is not None:
                query = query.where(samples.c.series_id.in_(part))
            rows += self._rows(conn, query)
        if not rows:
            return []
        # NULL (NaN) becomes NaN; ms and ids are exact. Twice as fast as np.array(rows).
        table = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=3 * len(rows)).reshape(-1, 3)
        self._mark_stale(conn, parts, span, table)
        sids = table[:, 0].astype(np.int64)
        if self._dialect != "sqlite" and len(sids) > 1:
            order = np.lexsort((table[:, 1], sids))
            sids, table = sids[order], table[order]
        elif len(sids) > 1 and not (sids[1:] >= sids[:-1]).all():
            order = np.argsort(sids, kind="stable")
            sids, table = sids[order], table[order]
        ts = table[:, 1].astype(np.int64)
        vals = np.ascontiguousarray(table[:, 2])
        cuts = (np.flatnonzero(sids[1:] != sids[:-1]) + 1).tolist()
        starts, ends = [0, *cuts], [*cuts, len(sids)]
        firsts = ts[starts].tolist()
        lasts = ts[[e - 1 for e in ends]].tolist()
        return [(sid, ts[a:b], vals[a:b], first, last) for sid, a, b, first, last in
                zip(sids[starts].tolist(), starts, ends, firsts, lasts, strict=True)]

    def _mark_stale(self, conn: Connection, parts: list[Any], span: list[Any], table: np.ndarray) -> None:
        """Set the staleness marker in ``table`` (rows of series id, ms, value) where the
        head row of a NaN value carries the stale flag."""
        nan_rows = np.flatnonzero(np.isnan(table[:, 2])).tolist()
        if not nan_rows:
            return
        stale: set[tuple[int, int]] = set()
        for part in parts:
            query = select(samples.c.series_id, samples.c.ts).where(
                *span, samples.c.value.is_(None), samples.c.stale.is_(True))
            if part is not None:
                query = query.where(samples.c.series_id.in_(part))
            stale.update((int(r[0]), int(r[1])) for r in self._rows(conn, query))
        if stale:
            for i in nan_rows:
                if (int(table[i, 0]), int(table[i, 1])) in stale:
                    table[i, 2] = STALE_NAN

    def _head_newest(self, conn: Connection, ids: Sequence[int], lo: int,
                     hi: int, every: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(series ids, ms, values) of the newest head sample in [lo, hi] of each series that
        has one, ascending by id (with ``every``, of all series: the caller drops the others).

        SQLite only. It fills a bare column from the row holding max(), which gives the
        newest sample of each series per GROUP BY. Grouping within one slot follows the
        key order (slot, series id, ts) and needs no sort, so the slots are read newest
        first, each only for the series not found yet, until every series is found (an
        instant query mostly reads one slot). A wide span is grouped in one statement.
        """
        slots = self._head_slots(conn, lo, hi)
        if slots is None:
            return _EMPTY_MS, _EMPTY_MS, _EMPTY_VALUES
        a, b = slots
        if b - a < _NEWEST_SLOTS:
            conditions = [[samples.c.slot == slot] for slot in range(b, a - 1, -1)]
        else:
            conditions = [[samples.c.slot.between(a, b)]]
        missing = set(ids)
        tables = []
        for where in conditions:
            parts = [None] if every else list(_batched(sorted(missing)))
            for part in parts:
                query = (select(samples.c.series_id, func.max(samples.c.ts), samples.c.value, samples.c.stale)
                         .where(*where, samples.c.ts >= lo, samples.c.ts <= hi).group_by(samples.c.series_id))
                if part is not None:
                    query = query.where(samples.c.series_id.in_(part))
                rows = self._rows(conn, query)
                if rows:
                    table = np.array(rows, dtype=np.float64)  # NULL (NaN) becomes NaN
                    tables.append(table)
                    missing.difference_update(table[:, 0].astype(np.int64).tolist())
            if not missing:
                break
        if not tables:
            return _EMPTY_MS, _EMPTY_MS, _EMPTY_VALUES
        table = np.concatenate(tables) if len(tables) > 1 else tables[0]
        sids = table[:, 0].astype(np.int64)
        if len(tables) > 1:  # a series found in two slots: the first (newest slot) wins
            sids, first = np.unique(sids, return_index=True)
            table = table[first]
        vals = np.ascontiguousarray(table[:, 2])
        marked = table[:, 3] == 1  # the stale flag: 1, or NULL (NaN) for a sample
        if marked.any():
            vals[marked] = STALE_NAN
        return sids, table[:, 1].astype(np.int64), vals

    def _value_pieces(self, conn: Connection, ids: Sequence[int], lo: int, hi: int, tiers: tuple[int, ...],
                      every: bool = False, newest: bool = False) -> dict[int, list[_Piece]]:
        """Per series, (ms, values, first ms, last ms) pieces in write order: coarse tiers,
        older chunks, then the head (only its newest sample per series with ``newest``)."""
        pieces: dict[int, list[_Piece]] = {sid: [] for sid in ids}
        rows = self._chunk_rows(conn, ids, lo, hi, tiers, every)
        if every:
            rows = (r for r in rows if r[0] in pieces)
        for sid, ts, vals, first, last in self._decode_cached(rows):
            pieces[sid].append((ts, vals, first, last))
        if TIER_RAW in tiers:
            if newest and self._fast:
                sids, ms, values = self._head_newest(conn, ids, lo, hi, every)
                head = [(sid, ms[i:i + 1], values[i:i + 1], t, t)
                        for i, (sid, t) in enumerate(zip(sids.tolist(), ms.tolist(), strict=True))]
            else:
                head = self._head_columns(conn, ids, lo, hi, every)
            for sid, ts, vals, first, last in head:
                got = pieces.get(sid)
                if got is not None:
                    got.append((ts, vals, first, last))
        return pieces

    @staticmethod
    def _merge_values(pieces: list[_Piece], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Merge (ms, values, first ms, last ms) pieces given oldest write first and cut to
        [lo, hi] (ms). Pieces that follow each other in time (hourly chunks, then the
        head: the usual case) are cut at the ends and joined, deciding from ``first`` and
        ``last`` alone; overlapping ones are sorted, the last write of a timestamp winning."""
        if not pieces:
            return _EMPTY_MS, _EMPTY_VALUES
        if len(pieces) == 1:
            ts, vs, first, last = pieces[0]
            if first >= lo and last <= hi:
                return ts, vs
        else:
            ordered = pieces
            if not all(a[3] < b[2] for a, b in pairwise(ordered)):
                ordered = sorted(pieces, key=itemgetter(2))
            if all(a[3] < b[2] for a, b in pairwise(ordered)):
                if ordered[0][2] < lo or ordered[-1][3] > hi:
                    ordered = [*ordered]
                    ts, vs, first, last = ordered[0]
                    if first < lo:
                        a = int(np.searchsorted(ts, lo, "left"))
                        ordered[0] = (ts[a:], vs[a:], first, last)
                    ts, vs, first, last = ordered[-1]
                    if last > hi:
                        b = int(np.searchsorted(ts, hi, "right"))
                        ordered[-1] = (ts[:b], vs[:b], first, last)
                return (np.concatenate([p[0] for p in ordered]),
                        np.concatenate([p[1] for p in ordered]))
            # overlapping writes: in write order, sorted stably, the last write of a timestamp wins
            ts = np.concatenate([p[0] for p in pieces])
            vs = np.concatenate([p[1] for p in pieces])
            order = np.argsort(ts, kind="stable")
            ts, vs = ts[order], vs[order]
            keep = np.ones(len(ts), dtype=bool)
            keep[:-1] = ts[1:] != ts[:-1]
            ts, vs = ts[keep], vs[keep]
        a, b = int(np.searchsorted(ts, lo, "left")), int(np.searchsorted(ts, hi, "right"))
        return ts[a:b], vs[a:b]

    def _aggregate_pieces(self, conn: Connection, ids: Sequence[int], lo: int, hi: int,
                          tiers: tuple[int, ...]) -> dict[int, list[tuple[list[int], list[Any]]]]:
        pieces: dict[int, list[tuple[list[int], list[Any]]]] = {sid: [] for sid in ids}
        for sid, t, _, _, _, data in self._chunk_rows(conn, ids, lo, hi, tiers):
            if t == TIER_RAW:
                ts, vals = enc.decode_raw(data)
                # a stale marker is no value to aggregate (downsampling drops it too)
                kept = [(m, v) for m, v in zip(ts, vals, strict=True) if not is_stale(v)]
                pieces[sid].append(([m for m, _ in kept], [(1, v, v, v, v) for _, v in kept]))
            else:
                agg = enc.decode_aggregates(data)
                pieces[sid].append((agg.timestamps,
                                    list(zip(agg.count, agg.sum, agg.min, agg.max, agg.last))))
        if TIER_RAW in tiers:
            for sid, group in groupby(self._head_rows(conn, ids, lo, hi), key=itemgetter(0)):
                rows = [r for r in group if not r[3]]
                vals = [_NAN if r[2] is None else r[2] for r in rows]
                pieces[sid].append(([r[1] for r in rows], [(1, v, v, v, v) for v in vals]))
        return pieces

    def _matched_ids(self, conn: Connection, matchers: list[Matcher],
                     tier: str) -> tuple[list[tuple[int, dict[str, str]]], tuple[int, ...]]:
        tiers = _TIERS.get(tier)
        if tiers is None:
            raise InputError(f"unknown tier {tier!r}; use one of {', '.join(_TIERS)}")
        return self._match(conn, matchers), tiers

    # -- reads ----------------------------------------------------------------------------
    def select_columns(self, matchers: list[Matcher], start: float, end: float, *,
                       tier: Tier = "auto", newest: bool = False) -> list[SeriesColumns]:
        """Like :meth:`select`, with each series' samples as NumPy arrays (ms, values).

        The fast path of queries: no Python object per sample is made. With
        ``newest``, the last sample of each series is exact but earlier ones may
        be left out (what an instant query needs: the head is read newest-only).
        Raises InputError for an unknown tier, StorageError when the database fails.
        """
        lo, hi = _ms_range(start, end)
        if hi < lo:
            return []
        with self._errors("read samples"), self.engine.connect() as conn:
            matched, tiers = self._matched_ids(conn, matchers, tier)
            if not matched:
                return []
            ids = [sid for sid, _ in matched]
            # Most of all series: read the whole span and drop unmatched rows, rather than
            # send IN lists (a selector matching few of many series still uses IN lists).
            every = len(ids) > _IN_BATCH and len(ids) * 2 > self._index_count
            pieces = self._value_pieces(conn, ids, lo, hi, tiers, every, newest)
        out = []
        merge = self._merge_values
        for sid, labels in matched:
            ts, vs = merge(pieces[sid], lo, hi)
            if len(ts):
                out.append(SeriesColumns(labels, ts, vs))
        return out

    def select_newest(self, matchers: list[Matcher], start: float,
                      end: float) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray]:
        """The newest sample in ``[start, end]`` of every series the matchers accept that
        has one, as (labels, ms, values), one each, in series id order: what an instant
        query reads, without an object per series. The label dicts are the store's own
        (as in :class:`SeriesColumns`): do not modify them. Raises StorageError when the
        database fails.
        """
        lo, hi = _ms_range(start, end)
        if hi < lo:
            return [], _EMPTY_MS, _EMPTY_VALUES
        if not self._fast:
            cols = self.select_columns(matchers, start, end, newest=True)
            return ([c.labels for c in cols], np.array([c.ms[-1] for c in cols], dtype=np.int64),
                    np.array([c.values[-1] for c in cols], dtype=np.float64))
        tiers = _TIERS["auto"]
        with self._errors("read samples"), self.engine.connect() as conn:
            matched = self._match(conn, matchers)
            if not matched:
                return [], _EMPTY_MS, _EMPTY_VALUES
            ids = [sid for sid, _ in matched]
            every = len(ids) > _IN_BATCH and len(ids) * 2 > self._index_count
            sids, ms, vals = self._head_newest(conn, ids, lo, hi, every)
            wanted = set(ids)
            rows = [r for r in self._chunk_rows(conn, ids, lo, hi, tiers, every) if r[0] in wanted]
            older = self._decode_cached(rows) if rows else []
        if every and len(sids):
            keep = np.isin(sids, np.asarray(ids, dtype=np.int64))
            if not keep.all():
                sids, ms, vals = sids[keep], ms[keep], vals[keep]
        if older:
            # Some series have chunks in the range: merge those series as select_columns does.
            pieces: dict[int, list[_Piece]] = {}
            for sid, t, v, first, last in older:
                pieces.setdefault(sid, []).append((t, v, first, last))
            at = {sid: i for i, sid in enumerate(sids.tolist())}
            last_ms, last_v = ms.tolist(), vals.tolist()
            result = {sid: (last_ms[i], last_v[i]) for sid, i in at.items()}
            for sid, got in pieces.items():
                i = at.get(sid)
                if i is not None:  # the head's sample is the newest write
                    got.append((ms[i:i + 1], vals[i:i + 1], last_ms[i], last_ms[i]))
                t, v = self._merge_values(got, lo, hi)
                if len(t):
                    result[sid] = (int(t[-1]), float(v[-1]))
            order = sorted(result)
            sids = np.array(order, dtype=np.int64)
            ms = np.array([result[sid][0] for sid in order], dtype=np.int64)
            vals = np.array([result[sid][1] for sid in order], dtype=np.float64)
        labels = self._labels
        return [labels[sid] for sid in sids.tolist()], ms, vals

    def select(self, matchers: list[Matcher], start: float, end: float, *,
               tier: Tier = "auto") -> list[SeriesData]:
        """The samples of every series the matchers accept, in ``[start, end]`` (seconds).

        ``tier`` "auto" merges the head and every tier; "raw" reads only raw
        samples, "minute"/"hour" only those aggregates (as their last value).
        Series without a sample in the range are left out. An ``=`` matcher on
        ``__name__`` is resolved in SQL; the others are applied in Python.
        """
        return [SeriesData(dict(s.labels), (s.ms / 1000).tolist(), s.values.tolist())
                for s in self.select_columns(matchers, start, end, tier=tier)]

    def select_aggregates(self, matchers: list[Matcher], start: float, end: float, *,
                          tier: Tier = "auto") -> list[AggregateData]:
        """Like :meth:`select`, but min/max/sum/count/last per bucket (raw samples are buckets of one)."""
        lo, hi = _ms_range(start, end)
        if hi < lo:
            return []
        with self._errors("read samples"), self.engine.connect() as conn:
            matched, tiers = self._matched_ids(conn, matchers, tier)
            if not matched:
                return []
            pieces = self._aggregate_pieces(conn, [sid for sid, _ in matched], lo, hi, tiers)
        out = []
        for sid, labels in matched:
            ts, rows = merge_last_wins(pieces[sid])
            a, b = bisect_left(ts, lo), bisect_right(ts, hi)
            if a < b:
                cols = list(zip(*rows[a:b]))
                out.append(AggregateData(dict(labels), _seconds(ts[a:b]), list(cols[0]), list(cols[1]),
                                         list(cols[2]), list(cols[3]), list(cols[4])))
        return out

    def _with_data(self, conn: Connection, ids: list[int], lo: int, hi: int) -> set[int]:
        """Which of ``ids`` have a chunk overlapping [lo, hi] or a head sample in it."""
        found: set[int] = set()
        span = self._head_span(conn, lo, hi)
        if len(ids) > _IN_BATCH and len(ids) * 2 > self._index_count:
            # most of all series (Grafana's label lists): two scans beat many IN lists
            found.update(conn.execute(select(chunks.c.series_id).distinct().where(
                chunks.c.end_ts >= lo, chunks.c.start_ts <= hi)).scalars())
            if span is not None:
                found.update(conn.execute(select(samples.c.series_id).distinct().where(*span)).scalars())
            return found.intersection(ids)
        for part in _batched(ids):
            found.update(conn.execute(select(chunks.c.series_id).distinct().where(
                chunks.c.series_id.in_(part), chunks.c.end_ts >= lo, chunks.c.start_ts <= hi)).scalars())
            rest = [sid for sid in part if sid not in found]
            if rest and span is not None:
                found.update(conn.execute(select(samples.c.series_id).distinct().where(
                    *span, samples.c.series_id.in_(rest))).scalars())
        return found

    def series(self, matchers_list: list[list[Matcher]], start: float | None = None,
               end: float | None = None) -> list[dict[str, str]]:
        """Label sets (with ``__name__``) of the series any selector matches, as
        Prometheus's ``/api/v1/series``; with ``start``/``end``, only those with
        samples in that range."""
        with self._errors("read series"), self.engine.connect() as conn:
            found: dict[int, dict[str, str]] = {}
            for matchers in matchers_list:
                for sid, labels in self._match(conn, matchers):
                    found.setdefault(sid, labels)
            ids = sorted(found)
            if start is not None or end is not None:
                lo, hi = _ms_range(-1e15 if start is None else start, 1e15 if end is None else end)
                keep = self._with_data(conn, ids, lo, hi)
                ids = [sid for sid in ids if sid in keep]
        return [dict(found[sid]) for sid in ids]

    def _all_labels(self) -> list[dict[str, str]]:
        with self._errors("read series"), self.engine.connect() as conn:
            return [labels for _, labels in self._match(conn, [])]

    def _label_sets(self, matchers_list: list[list[Matcher]] | None, start: float | None,
                    end: float | None) -> list[dict[str, str]]:
        if matchers_list or start is not None or end is not None:
            return self.series(matchers_list or [[]], start, end)
        return self._all_labels()

    def label_names(self, matchers_list: list[list[Matcher]] | None = None,
                    start: float | None = None, end: float | None = None) -> list[str]:
        """Every label name in use (``__name__`` included), sorted; only in the matched series
        if given, and with ``start``/``end`` only in series with samples then (as :meth:`series`)."""
        return sorted({name for labels in self._label_sets(matchers_list, start, end) for name in labels})

    def label_values(self, name: str, matchers_list: list[list[Matcher]] | None = None,
                     start: float | None = None, end: float | None = None) -> list[str]:
        """Every value of label ``name`` (``__name__`` gives metric names), sorted; matchers
        and ``start``/``end`` narrow the series as for :meth:`label_names`."""
        if name == "__name__" and not matchers_list and start is None and end is None:
            with self._errors("read series"), self.engine.connect() as conn:
                return sorted(conn.execute(select(series.c.name).distinct()).scalars())
        sets = self._label_sets(matchers_list, start, end)
        return sorted({labels[name] for labels in sets if name in labels})

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: series, head samples, chunks/samples/bytes per tier, the size of
        the whole database, and which database it is (its URL, password hidden)."""
        with self._errors("read statistics"), self.engine.connect() as conn:
            n_series = conn.execute(select(func.count()).select_from(series)).scalar_one()
            head = conn.execute(select(func.count()).select_from(samples)).scalar_one()
            tiers = {name: {"chunks": 0, "samples": 0, "bytes": 0} for name in TIER_NAMES.values()}
            query = (select(chunks.c.tier, func.count(), func.sum(chunks.c.count),
                            func.sum(func.length(chunks.c.data))).group_by(chunks.c.tier))
            for row in conn.execute(query):
                tier, n, count, size = int(row[0]), row[1], row[2], row[3]
                tiers[TIER_NAMES.get(tier, str(tier))] = {"chunks": int(n), "samples": int(count or 0),
                                                          "bytes": int(size or 0)}
            db_bytes = None
            if self._dialect == "sqlite":
                pages: int = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
                page_size: int = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
                db_bytes = int(pages) * int(page_size)
            elif self._dialect == "postgresql":
                db_bytes = int(conn.exec_driver_sql("SELECT pg_database_size(current_database())")
                               .scalar_one())
        return {"series": int(n_series), "head_samples": int(head), "tiers": tiers,
                "database_bytes": db_bytes, "database": self._db}

    # -- deletion -------------------------------------------------------------------------
    def delete_series(self, matchers: list[Matcher]) -> int:
        """Delete the matched series with all their samples; returns how many series went."""
        if not matchers:
            raise InputError("delete_series needs at least one matcher; refusing to delete everything")
        with self._write_lock, self._errors("delete series"):
            with self.engine.connect() as conn:
                ids = [sid for sid, _ in self._match(conn, matchers)]
            for part in _batched(ids):
                with self.engine.begin() as conn:
                    conn.execute(delete(samples).where(samples.c.series_id.in_(part)))
                    conn.execute(delete(chunks).where(chunks.c.series_id.in_(part)))
                    conn.execute(delete(series).where(series.c.id.in_(part)))
            gone = set(ids)
            self._ids = {k: v for k, v in self._ids.items() if v not in gone}
            for sid in gone:
                self._labels.pop(sid, None)
        return len(ids)

    # -- compaction -----------------------------------------------------------------------
    def compact(self, now: float | None = None) -> int:
        """Move head samples of whole clock hours older than ``head_window`` into raw chunks.

        Returns how many samples moved. Works one hour window at a time and,
        within it, on a few series per transaction (about ``batch_rows``
        samples), so appends wait at most one batch; a crash leaves every
        sample either in the head or in a chunk, and running again continues.
        """
        now = self.clock.time() if now is None else now
        hour = WINDOW_MS[TIER_RAW]
        cutoff = (int((now - self.head_window) * 1000) // hour) * hour
        moved = 0
        after: int | None = None
        while True:
            with self._errors("compact the head"), self.engine.connect() as conn:
                wend = self._next_window(conn, after, cutoff)
                top = conn.execute(select(func.max(series.c.id))).scalar() or 0
            if wend is None:
                return moved
            moved += self._compact_window(wend, top)
            after = wend

    @staticmethod
    def _next_window(conn: Connection, after: int | None, cutoff: int) -> int | None:
        """End of the first raw-chunk window holding a head sample newer than ``after``
        and not newer than ``cutoff``."""
        slot_from = None if after is None else after // SLOT_MS
        while True:
            query = select(func.min(samples.c.slot))
            if slot_from is not None:
                query = query.where(samples.c.slot >= slot_from)
            slot = conn.execute(query).scalar()
            if slot is None or slot * SLOT_MS > cutoff:
                return None
            query = select(func.min(samples.c.ts)).where(samples.c.slot == slot)
            if after is not None:
                query = query.where(samples.c.ts > after)
            first = conn.execute(query).scalar()
            if first is None:
                slot_from = slot + 1
                continue
            return window_end(first, WINDOW_MS[TIER_RAW]) if first <= cutoff else None

    def _compact_window(self, wend: int, top_id: int) -> int:
        lo, hi = wend - WINDOW_MS[TIER_RAW], wend
        slots = samples.c.slot.in_(range((lo + 1) // SLOT_MS, hi // SLOT_MS + 1))
        moved = 0
        first, width = 0, 64  # series ids [first, first + width) per batch, adapted to the density
        while True:
            last = None if first + width > top_id else first + width
            where = [slots, samples.c.ts > lo, samples.c.ts <= hi, samples.c.series_id >= first]
            if last is not None:
                where.append(samples.c.series_id < last)
            with self._write_lock, self._errors("compact the head"), self.engine.begin() as conn:
                cols = (samples.c.series_id, samples.c.ts, samples.c.value, samples.c.stale)
                take = self._dialect == "postgresql"
                if take:
                    # Another process may append to this window meanwhile (a late sample): a
                    # later DELETE would drop its row unread under READ COMMITTED, so move
                    # exactly the rows deleted.
                    rows = sorted(conn.execute(delete(samples).where(*where).returning(*cols)).all(),
                                  key=itemgetter(0, 1))
                else:
                    rows = list(conn.execute(select(*cols).where(*where)
                                             .order_by(samples.c.series_id, samples.c.ts)))
                if rows:
                    new_chunks = []
                    for sid, group in groupby(rows, key=itemgetter(0)):
                        items = list(group)
                        ts = [r[1] for r in items]
                        # chunks keep float bits exactly, so the marker goes in as itself
                        vals = [(STALE_NAN if r[3] else _NAN) if r[2] is None else r[2] for r in items]
                        new_chunks.append({"series_id": sid, "tier": TIER_RAW, "start_ts": ts[0],
                                           "end_ts": ts[-1], "count": len(ts),
                                           "data": enc.encode_raw(ts, vals)})
                    conn.execute(insert(chunks), new_chunks)
                    if not take:
                        conn.execute(delete(samples).where(*where))
            moved += len(rows)
            if last is None:
                return moved
            first = last
            grow = width * 4 if not rows else int(width * self._batch_rows / len(rows))
            width = max(1, min(width * 4, grow))

    # -- retention ------------------------------------------------------------------------
    def apply_retention(self, now: float | None = None) -> dict[str, int]:
        """Downsample and expire by the retention policy; returns chunks handled per step.

        Raw chunks whose whole day is older than ``retention.raw`` become
        one-minute aggregates; minute chunks whose whole week is older than
        ``retention.minute`` become one-hour aggregates; hour chunks entirely
        older than ``retention.hour`` are deleted. A retention of 0 keeps that
        tier forever. Every batch is one transaction: idempotent and resumable.
        """
        now = self.clock.time() if now is None else now
        now_ms = int(now * 1000)
        policy = self.retention
        done = {"raw_downsampled": 0, "minute_downsampled": 0, "hour_deleted": 0}
        if policy.raw > 0:
            done["raw_downsampled"] = self._downsample(TIER_RAW, now_ms - int(policy.raw * 1000))
        if policy.minute > 0:
            done["minute_downsampled"] = self._downsample(TIER_MINUTE, now_ms - int(policy.minute * 1000))
        if policy.hour > 0:
            done["hour_deleted"] = self._expire(TIER_HOUR, now_ms - int(policy.hour * 1000))
        return done

    def maintain(self, now: float | None = None) -> dict[str, int]:
        """``compact`` then ``apply_retention``: what a server runs periodically."""
        moved = self.compact(now)
        return {"compacted_samples": moved, **self.apply_retention(now)}

    def _downsample(self, src: int, older_than_ms: int) -> int:
        dst = src + 1
        window, bucket = WINDOW_MS[dst], BUCKET_MS[dst]
        cutoff = (older_than_ms // window) * window
        handled = 0
        while True:
            with self._write_lock, self._errors(f"downsample {TIER_NAMES[src]} chunks"), \
                    self.engine.begin() as conn:
                meta = conn.execute(
                    select(chunks.c.id, chunks.c.series_id, chunks.c.end_ts)
                    .where(chunks.c.tier == src, chunks.c.end_ts <= cutoff)
                    .order_by(chunks.c.series_id, chunks.c.end_ts, chunks.c.id)
                    .limit(self._batch_chunks)
                    # PostgreSQL: a second server sharing the database skips chunks being handled
                    .with_for_update(skip_locked=self._dialect == "postgresql")).all()
                if not meta:
                    return handled
                groups: dict[tuple[int, int], list[int]] = {}
                for row in meta:
                    cid, sid, end = int(row[0]), int(row[1]), int(row[2])
                    groups.setdefault((sid, window_end(end, window)), []).append(cid)
                if len(meta) == self._batch_chunks:
                    last = next(reversed(groups))
                    if len(groups) > 1:
                        del groups[last]  # may continue past the batch
                    else:  # one window holds more chunks than a batch: take all of it
                        sid, wend = last
                        groups[last] = list(conn.execute(
                            select(chunks.c.id).where(
                                chunks.c.series_id == sid, chunks.c.tier == src,
                                chunks.c.end_ts > wend - window, chunks.c.end_ts <= wend)
                            .order_by(chunks.c.id)).scalars())
                ids = sorted(cid for group in groups.values() for cid in group)
                blobs: dict[int, bytes] = {}
                for part in _batched(ids):
                    for row in conn.execute(
                            select(chunks.c.id, chunks.c.data).where(chunks.c.id.in_(part))):
                        blobs[int(row[0])] = bytes(row[1])
                new_chunks = []
                for (sid, _), group in groups.items():
                    agg = self._aggregate(src, [blobs[cid] for cid in sorted(group)], bucket)
                    if len(agg):
                        new_chunks.append({"series_id": sid, "tier": dst, "start_ts": agg.timestamps[0],
                                           "end_ts": agg.timestamps[-1], "count": len(agg),
                                           "data": enc.encode_aggregates(agg)})
                if new_chunks:
                    conn.execute(insert(chunks), new_chunks)
                for part in _batched(ids):
                    conn.execute(delete(chunks).where(chunks.c.id.in_(part)))
                handled += len(ids)

    @staticmethod
    def _aggregate(src: int, blobs: list[bytes], bucket: int) -> enc.Aggregates:
        """Merge the chunks of one window (oldest write first) and bucket them."""
        if src == TIER_RAW:
            ts, vals = merge_last_wins([enc.decode_raw(b) for b in blobs])
            return downsample_raw(ts, vals, bucket)
        pieces = []
        for blob in blobs:
            a = enc.decode_aggregates(blob)
            pieces.append((a.timestamps, list(zip(a.count, a.sum, a.min, a.max, a.last))))
        ts, rows = merge_last_wins(pieces)
        cols = [list(c) for c in zip(*rows)] if rows else [[], [], [], [], []]
        return downsample_aggregates(enc.Aggregates(ts, *cols), bucket)

    def _expire(self, tier: int, older_than_ms: int) -> int:
        deleted = 0
        while True:
            with self._write_lock, self._errors(f"expire {TIER_NAMES[tier]} chunks"), \
                    self.engine.begin() as conn:
                ids: list[int] = list(conn.execute(
                    select(chunks.c.id).where(chunks.c.tier == tier, chunks.c.end_ts <= older_than_ms)
                    .limit(self._batch_chunks * 4)).scalars())
                if not ids:
                    return deleted
                for part in _batched(ids):
                    conn.execute(delete(chunks).where(chunks.c.id.in_(part)))
                deleted += len(ids)
