"""Durations and sizes as people write them in config files."""

from __future__ import annotations

import math

import pytest

from watchkeeper.units import format_duration, parse_duration, parse_size

DURATION_HELP = "is not a duration; use forms like 500ms, 30s, 5m, 1h30m, 7d"
SIZE_HELP = "is not a size; use forms like 512, 10MB, 1GiB"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m", 60.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("500ms", 0.5),
        ("1s500ms", 1.5),
        ("1.5s", 1.5),
        ("0.25h", 900.0),
        ("1d", 86400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("1y", 365 * 86400.0),
        ("0s", 0.0),
        ("10", 10.0),
        ("2.5", 2.5),
        (" 5m ", 300.0),
        (15, 15.0),
        (0, 0.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "s",
        "m",
        "5x",
        "5 m",
        "1h 30m",
        "-1s",
        "+1s",
        "1.5.5s",
        "30s5",
        "5mm",
        "1e3s",
        "five",
        "1H",
        "10sec",
    ],
)
def test_parse_duration_rejects_text(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == f"{text!r} {DURATION_HELP}"


@pytest.mark.parametrize("value", [True, False, -1, -0.5, math.inf, math.nan])
def test_parse_duration_rejects_numbers_that_are_not_durations(value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(info.value) == f"{value!r} {DURATION_HELP}"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (0.001, "1ms"),
        (0.9996, "1s"),
        (1, "1s"),
        (1.4, "1s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (3661, "1h1m1s"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90061, "1d1h1m1s"),
        (604800, "7d"),
        (604801, "7d1s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["250ms", "1s", "59s", "1m30s", "1h", "1d1h1m1s", "7d"])
def test_format_then_parse_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("512B", 512),
        ("1k", 1000),
        ("1KB", 1000),
        ("1.5k", 1500),
        ("10MB", 10_000_000),
        ("10mb", 10_000_000),
        ("2G", 2_000_000_000),
        ("1TB", 10**12),
        ("1KiB", 1024),
        ("10MiB", 10 * 1024**2),
        ("1GiB", 1024**3),
        ("1TiB", 1024**4),
        (" 10 kb ", 10_000),
        (0, 0),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "value", ["", "MB", "10XB", "-1", "1e3", "ten", "10 M B", "1.2.3k", -1, True, 1.5, None]
)
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(value)  # type: ignore[arg-type]
    assert str(info.value) == f"{value!r} {SIZE_HELP}"
