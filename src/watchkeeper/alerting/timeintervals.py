"""Named time intervals (maintenance windows, business hours), in Alertmanager's format.

A config section such as::

    time_intervals:
      - name: business-hours
        time_intervals:
          - weekdays: ["monday:friday"]
            times: [{start_time: "09:00", end_time: "17:00"}]
            location: Europe/Berlin

reads as Alertmanager reads it. A named interval is active when *any* of its
entries contains the time; an entry contains it when *every* field it sets
does (an unset field matches always). Fields:

* ``times``: ``HH:MM`` to ``HH:MM``, start inclusive, end exclusive, ``24:00``
  allowed as an end; start must be before end.
* ``weekdays``: names (any case) or inclusive ranges ``monday:friday``; the
  week runs from Sunday to Saturday, so ``saturday:sunday`` is an error.
* ``days_of_month``: ``1:5``, ``-1`` (the last day), ``-7:-1`` (the last
  week); a range reaching past the month's end is clipped to it, and one
  starting past it does not match.
* ``months``: names or numbers 1-12, ranges ``may:august``.
* ``years``: ``2024`` or ``2024:2026``.
* ``location``: an IANA zone (``Europe/Berlin``), ``UTC`` (the default) or
  ``Local`` (this host's zone), through :mod:`zoneinfo`.

Errors are pydantic validation errors whose messages follow Alertmanager's
(``start time cannot be equal or greater than end time``); an unknown
interval name given to :meth:`TimeIntervals.active` or
:meth:`TimeIntervals.check_names` is a ConfigError / KeyError.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any

from pydantic import PrivateAttr, field_validator, model_validator

from watchkeeper.config.types import StrictModel
from watchkeeper.errors import ConfigError, ConfigIssue

__all__ = ["TimeInterval", "TimeIntervalSpec", "TimeIntervals", "TimeRange", "load_location"]

_WEEKDAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4,
             "friday": 5, "saturday": 6}
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december")
_MONTHS = {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_TIME_RE = re.compile(r"(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\Z")


def _minutes(text: str) -> int:
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format (use HH:MM, "
                         "00:00 to 24:00)")
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def _split_range(text: Any, what: str) -> tuple[str, str]:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a valid {what}")
    low = text.lower()
    if ":" in low:
        parts = low.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return parts[0], parts[1]
    return low, low


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text} is not a valid {what}") from None


def _weekday(text: str) -> int:
    if text not in _WEEKDAYS:
        raise ValueError(f"{text} is not a valid weekday")
    return _WEEKDAYS[text]


def _month(text: str) -> int:
    if text in _MONTHS:
        return _MONTHS[text]
    n = _int(text, "month")
    if not 1 <= n <= 12:
        raise ValueError(f"{text} is not a valid month: out of range")
    return n


def load_location(name: str) -> tzinfo:
    """The zone Go's ``time.LoadLocation`` would give: ``""``/``UTC`` -> UTC, ``Local`` -> the host's."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name} (use an IANA name such as Europe/Berlin, "
                         "UTC or Local)") from None


class TimeRange(StrictModel):
    """``start_time``-``end_time`` within a day, in minutes [start, end)."""

    start_time: str
    end_time: str
    _start: int = PrivateAttr(0)
    _end: int = PrivateAttr(0)

    @model_validator(mode="after")
    def _parse(self) -> TimeRange:
        if not self.start_time or not self.end_time:
            raise ValueError("both start and end times must be provided")
        start, end = _minutes(self.start_time), _minutes(self.end_time)
        if start >= end:
            raise ValueError("start time cannot be equal or greater than end time")
        self._start, self._end = start, end
        return self

    def contains(self, minute_of_day: int) -> bool:
        return self._start <= minute_of_day < self._end


class TimeIntervalSpec(StrictModel):
    """One entry of a named interval: every field set must contain the time."""

    times: list[TimeRange] | None = None
    weekdays: list[str] | None = None
    days_of_month: list[str] | None = None
    months: list[str] | None = None
    years: list[str] | None = None
    location: str | None = None
    _weekdays: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _days: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _months: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _years: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _tz: tzinfo = PrivateAttr(UTC)

    @field_validator("weekdays", "days_of_month", "months", "years", mode="before")
    @classmethod
    def _as_strings(cls, value: Any) -> Any:
        # YAML gives ``days_of_month: [1, -1]`` as numbers; Alertmanager reads them as text
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("weekdays")
    @classmethod
    def _check_weekdays(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            b, e = (_weekday(p) for p in _split_range(text, "weekday"))
            if b > e:
                raise ValueError(f"{text}: start day cannot be after end day (the week runs "
                                 "from sunday to saturday)")
        return value

    @field_validator("days_of_month")
    @classmethod
    def _check_days(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            b, e = (_int(p, "day of the month") for p in _split_range(text, "day of the month"))
            for d in (b, e):
                if d == 0 or not -31 <= d <= 31:
                    raise ValueError(f"{d} is not a valid day of the month: out of range")
            if b < 0 < e:
                raise ValueError("end day must be negative if start day is negative")
            cb = 28 + b if b < 0 else b
            ce = 28 + e if e < 0 else e
            if cb > ce:
                raise ValueError(f"end day {e} is always before start day {b}")
        return value

    @field_validator("months")
    @classmethod
    def _check_months(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            b, e = (_month(p) for p in _split_range(text, "month"))
            if b > e:
                raise ValueError(f"end month {_MONTH_NAMES[e - 1]} is before start month "
                                 f"{_MONTH_NAMES[b - 1]}")
        return value

    @field_validator("years")
    @classmethod
    def _check_years(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            b, e = (_int(p, "year") for p in _split_range(text, "year"))
            if b <= 0 or e <= 0:
                raise ValueError(f"{text} is not a valid year: out of range")
            if b > e:
                raise ValueError(f"end year {e} is before start year {b}")
        return value

    @field_validator("location")
    @classmethod
    def _check_location(cls, value: str | None) -> str | None:
        if value is not None:
            load_location(value)
        return value

    @model_validator(mode="after")
    def _compile(self) -> TimeIntervalSpec:
        def ranges(items: list[str] | None, conv: Any, what: str) -> list[tuple[int, int]]:
            out = []
            for text in items or []:
                b, e = _split_range(text, what)
                out.append((conv(b), conv(e)))
            return out

        self._weekdays = ranges(self.weekdays, _weekday, "weekday")
        self._days = ranges(self.days_of_month, lambda s: _int(s, "day"), "day")
        self._months = ranges(self.months, _month, "month")
        self._years = ranges(self.years, lambda s: _int(s, "year"), "year")
        self._tz = load_location(self.location) if self.location is not None else UTC
        return self

    def contains(self, t: float) -> bool:
        """True when Unix time ``t`` falls in this entry (seen in its location)."""
        dt = datetime.fromtimestamp(t, self._tz)
        if self.times is not None and not any(r.contains(dt.hour * 60 + dt.minute)
                                              for r in self.times):
            return False
        if self.days_of_month is not None:
            dim = calendar.monthrange(dt.year, dt.month)[1]
            hit = False
            for b, e in self._days:
                begin = dim + b + 1 if b < 0 else b
                end = dim + e + 1 if e < 0 else e
                if begin > dim:  # starts after this month's last day
                    continue
                begin, end = max(-dim, min(begin, dim)), max(-dim, min(end, dim))
                if begin <= dt.day <= end:
                    hit = True
                    break
            if not hit:
                return False
        if self.months is not None and not any(b <= dt.month <= e for b, e in self._months):
            return False
        if self.weekdays is not None:
            wd = (dt.weekday() + 1) % 7  # Python: Monday=0; Alertmanager: Sunday=0
            if not any(b <= wd <= e for b, e in self._weekdays):
                return False
        return self.years is None or any(b <= dt.year <= e for b, e in self._years)


class TimeInterval(StrictModel):
    """A named interval: ``name`` and the entries any of which may contain a time."""

    name: str
    time_intervals: list[TimeIntervalSpec] = []

    def contains(self, t: float) -> bool:
        return any(spec.contains(t) for spec in self.time_intervals)


class TimeIntervals:
    """The named intervals of a config, asked by name."""

    def __init__(self, intervals: Iterable[TimeInterval]) -> None:
        self.intervals: dict[str, TimeInterval] = {}
        for iv in intervals:
            self.intervals[iv.name] = iv

    def active(self, name: str, t: float) -> bool:
        """True when the interval ``name`` contains Unix time ``t``.

        Raises KeyError for an unknown name (config validation should have
        caught it with :meth:`check_names`).
        """
        return self.intervals[name].contains(t)

    def any_active(self, names: Iterable[str], t: float) -> bool:
        return any(self.active(n, t) for n in names)

    def check_names(self, names: Iterable[str], *, file: str = "", path: str = "") -> None:
        """Raise ConfigError listing every name that is not a defined interval."""
        issues = [ConfigIssue(file, None, path, f"time interval {n!r} is not defined "
                              f"(defined: {', '.join(sorted(self.intervals)) or 'none'})")
                  for n in names if n not in self.intervals]
        if issues:
            raise ConfigError(issues)
