"""Named time intervals in Alertmanager's format: parsing, validation messages and whether a
time falls inside (times, weekdays, days of month incl. negative ones, months, years, zones)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from watchkeeper.alerting.timeintervals import TimeInterval, TimeIntervals, TimeIntervalSpec
from watchkeeper.errors import ConfigError

UTC = ZoneInfo("UTC")


def ts(text: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def spec(**kw: Any) -> TimeIntervalSpec:
    return TimeIntervalSpec.model_validate(kw)


@pytest.mark.parametrize(("kw", "when", "inside"), [
    # times: start inclusive, end exclusive, 24:00 as the end of the day
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, "2024-03-04 09:00", True),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, "2024-03-04 16:59:59", True),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, "2024-03-04 17:00", False),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, "2024-03-04 08:59", False),
    ({"times": [{"start_time": "17:00", "end_time": "24:00"}]}, "2024-03-04 23:59:59", True),
    ({"times": [{"start_time": "17:00", "end_time": "24:00"}]}, "2024-03-05 00:00", False),
    ({"times": [{"start_time": "00:00", "end_time": "06:00"},
                {"start_time": "22:00", "end_time": "24:00"}]}, "2024-03-04 23:00", True),
    # weekdays (2024-03-04 is a Monday), any case, inclusive ranges, week from Sunday
    ({"weekdays": ["monday:friday"]}, "2024-03-04 12:00", True),
    ({"weekdays": ["monday:friday"]}, "2024-03-08 12:00", True),
    ({"weekdays": ["monday:friday"]}, "2024-03-09 12:00", False),
    ({"weekdays": ["Saturday", "SUNDAY"]}, "2024-03-10 12:00", True),
    ({"weekdays": ["sunday:monday"]}, "2024-03-10 12:00", True),
    ({"weekdays": ["tuesday"]}, "2024-03-04 12:00", False),
    # days of month, negative from the end
    ({"days_of_month": ["1:7"]}, "2024-03-07 12:00", True),
    ({"days_of_month": ["1:7"]}, "2024-03-08 12:00", False),
    ({"days_of_month": ["-1"]}, "2024-02-29 12:00", True),   # leap year
    ({"days_of_month": ["-1"]}, "2023-02-28 12:00", True),
    ({"days_of_month": ["-1"]}, "2024-02-28 12:00", False),
    ({"days_of_month": ["-7:-1"]}, "2024-04-24 00:00", True),  # April has 30 days
    ({"days_of_month": ["-7:-1"]}, "2024-04-23 23:59", False),
    ({"days_of_month": [1, -1]}, "2024-05-31 10:00", True),  # YAML numbers
    # past the end of a short month: clipped, or skipped when the start is past it
    ({"days_of_month": ["25:31"]}, "2023-02-28 12:00", True),
    ({"days_of_month": ["30:31"]}, "2023-02-28 12:00", False),
    ({"days_of_month": ["30:31"]}, "2023-03-31 12:00", True),
    ({"days_of_month": ["-31:-29"]}, "2023-02-01 12:00", False),  # no such days in February
    ({"days_of_month": ["-31:-29"]}, "2023-03-03 12:00", True),
    # months and years
    ({"months": ["may:august"]}, "2024-08-31 23:00", True),
    ({"months": ["may:august"]}, "2024-09-01 00:00", False),
    ({"months": ["1", "December"]}, "2024-12-01 00:00", True),
    ({"months": ["1:3"]}, "2024-04-01 00:00", False),
    ({"years": ["2024:2026"]}, "2026-12-31 23:59", True),
    ({"years": ["2024"]}, "2025-01-01 00:00", False),
    ({"years": [2024]}, "2024-01-01 00:00", True),
    # every field set must hold
    ({"weekdays": ["saturday", "sunday"], "times": [{"start_time": "00:00", "end_time": "06:00"}]},
     "2024-03-09 05:00", True),
    ({"weekdays": ["saturday", "sunday"], "times": [{"start_time": "00:00", "end_time": "06:00"}]},
     "2024-03-09 07:00", False),
    ({}, "2024-03-09 07:00", True),
])
def test_contains_in_utc(kw: dict[str, Any], when: str, inside: bool) -> None:
    assert spec(**kw).contains(ts(when)) is inside


def test_location_moves_the_day_and_the_hour() -> None:
    s = spec(weekdays=["monday"], times=[{"start_time": "00:00", "end_time": "01:00"}],
             location="Australia/Sydney")
    # Monday 00:30 in Sydney is Sunday 13:30 UTC (daylight saving time in March)
    assert s.contains(ts("2024-03-03 13:30")) is True
    assert s.contains(ts("2024-03-04 00:30")) is False
    # across a DST change: 09:00-17:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer
    berlin = spec(times=[{"start_time": "09:00", "end_time": "17:00"}], location="Europe/Berlin")
    assert berlin.contains(ts("2024-01-15 08:00")) is True
    assert berlin.contains(ts("2024-07-15 07:00")) is True
    assert berlin.contains(ts("2024-07-15 15:00")) is False
    assert spec(location="UTC").contains(0) is True
    assert spec(location="Local").contains(0) is True


@pytest.mark.parametrize(("kw", "message"), [
    ({"times": [{"start_time": "17:00", "end_time": "09:00"}]},
     "start time cannot be equal or greater than end time"),
    ({"times": [{"start_time": "09:00", "end_time": "09:00"}]},
     "start time cannot be equal or greater than end time"),
    ({"times": [{"start_time": "24:00", "end_time": "24:00"}]},
     "start time cannot be equal or greater than end time"),
    ({"times": [{"start_time": "9:00", "end_time": "17:00"}]},
     "couldn't parse timestamp 9:00, invalid format"),
    ({"times": [{"start_time": "09:00", "end_time": "24:01"}]},
     "couldn't parse timestamp 24:01, invalid format"),
    ({"times": [{"start_time": "09:00", "end_time": ""}]}, "both start and end times must be provided"),
    ({"times": [{"start_time": "09:00"}]}, "end_time"),
    ({"weekdays": ["friday:monday"]}, "start day cannot be after end day"),
    ({"weekdays": ["funday"]}, "funday is not a valid weekday"),
    ({"weekdays": ["monday:tuesday:friday"]}, "couldn't parse range monday:tuesday:friday"),
    ({"days_of_month": ["0"]}, "0 is not a valid day of the month: out of range"),
    ({"days_of_month": ["32"]}, "32 is not a valid day of the month: out of range"),
    ({"days_of_month": ["-32:-1"]}, "-32 is not a valid day of the month: out of range"),
    ({"days_of_month": ["-3:5"]}, "end day must be negative if start day is negative"),
    ({"days_of_month": ["10:5"]}, "end day 5 is always before start day 10"),
    ({"days_of_month": ["-1:-3"]}, "end day -3 is always before start day -1"),
    ({"days_of_month": ["first"]}, "first is not a valid day of the month"),
    ({"months": ["august:may"]}, "end month may is before start month august"),
    ({"months": ["13"]}, "13 is not a valid month: out of range"),
    ({"months": ["smarch"]}, "smarch is not a valid month"),
    ({"years": ["2026:2024"]}, "end year 2024 is before start year 2026"),
    ({"years": ["0"]}, "0 is not a valid year"),
    ({"location": "Mars/Olympus"}, "unknown time zone Mars/Olympus"),
    ({"time_zone": "UTC"}, "Extra inputs are not permitted"),
])
def test_validation_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**kw)


def test_days_of_month_mixed_signs_that_may_hold() -> None:
    # begin positive, end negative is allowed (Alertmanager checks against a 28-day month)
    s = spec(days_of_month=["5:-5"])
    assert s.contains(ts("2024-01-27 00:00")) is True
    assert s.contains(ts("2024-01-28 00:00")) is False


ALERTMANAGER_YML = """
time_intervals:
  - name: offhours
    time_intervals:
      - times:
          - start_time: "00:00"
            end_time: "08:00"
          - start_time: "18:00"
            end_time: "24:00"
        weekdays: ['monday:friday']
      - weekdays: ['saturday', 'sunday']
  - name: month-end-freeze
    time_intervals:
      - days_of_month: ['-3:-1']
        months: ['december']
        years: ['2024:2025']
        location: 'America/New_York'
"""


def test_named_intervals_from_an_alertmanager_config() -> None:
    doc = yaml.safe_load(ALERTMANAGER_YML)
    tis = TimeIntervals(TimeInterval.model_validate(d) for d in doc["time_intervals"])
    assert tis.active("offhours", ts("2024-03-04 07:59")) is True    # Monday early
    assert tis.active("offhours", ts("2024-03-04 12:00")) is False
    assert tis.active("offhours", ts("2024-03-09 12:00")) is True    # Saturday, any time
    # 2025-01-01 03:00 UTC is still 2024-12-31 in New York
    assert tis.active("month-end-freeze", ts("2025-01-01 03:00")) is True
    assert tis.active("month-end-freeze", ts("2025-01-01 06:00")) is False
    assert tis.any_active(["month-end-freeze", "offhours"], ts("2024-03-09 12:00")) is True
    with pytest.raises(KeyError):
        tis.active("nope", 0)
    tis.check_names(["offhours"])
    with pytest.raises(ConfigError) as info:
        tis.check_names(["offhours", "holidays"], file="watchkeeper.yaml",
                        path="alerting.route.mute_time_intervals")
    assert str(info.value) == ("watchkeeper.yaml: alerting.route.mute_time_intervals: time "
                               "interval 'holidays' is not defined (defined: month-end-freeze, "
                               "offhours)")
