"""The plugin output parser, against stored real plugin outputs and the guidelines' edge cases.

Each ``tests/fixtures/nagios/NAME.txt`` is raw plugin stdout (captured from the Debian
monitoring-plugins, or hand-written from the guidelines); ``NAME.json`` beside it is
the expected parse.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from watchkeeper.errors import ParseError
from watchkeeper.monitor.model import Sample
from watchkeeper.monitor.nagios import (
    PerfDatum,
    Range,
    parse_output,
    parse_perfdata,
    parse_range,
    perfdata_samples,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nagios"
CASES = sorted(p.stem for p in FIXTURES.glob("*.txt"))


def _as_json(datum: PerfDatum) -> dict[str, object]:
    return {
        "label": datum.label,
        "value": None if math.isnan(datum.value) else datum.value,
        "uom": datum.uom,
        "warn": str(datum.warn) if datum.warn else None,
        "crit": str(datum.crit) if datum.crit else None,
        "min": datum.min,
        "max": datum.max,
    }


def test_fixtures_are_there() -> None:
    for name in ("check_disk", "check_load", "check_tcp", "check_http", "check_procs",
                 "check_swap", "check_dummy", "guidelines_multiline", "garbage"):
        assert name in CASES


@pytest.mark.parametrize("name", CASES)
def test_parse_output_matches_stored_expectation(name: str) -> None:
    text = (FIXTURES / f"{name}.txt").read_bytes().decode()
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    out = parse_output(text)
    assert out.summary == expected["summary"]
    assert out.long_text == expected["long_text"]
    assert [_as_json(d) for d in out.perfdata] == expected["perfdata"]
    assert out.warnings == expected["warnings"]


def test_guidelines_example_perfdata_spans_lines() -> None:
    out = parse_output((FIXTURES / "guidelines_multiline.txt").read_text())
    assert [d.label for d in out.perfdata] == ["/", "/boot", "/home", "/var/log"]
    assert out.long_text.splitlines()[0] == "/ 15272 MB (77%);"
    assert out.long_text.splitlines()[-1] == "/var/log 819 MB (84%);"


@pytest.mark.parametrize(
    ("text", "start", "end", "inside"),
    [
        ("10", 0.0, 10.0, False),
        ("10:", 10.0, math.inf, False),
        ("~:10", -math.inf, 10.0, False),
        ("10:20", 10.0, 20.0, False),
        ("@10:20", 10.0, 20.0, True),
        ("-5:5", -5.0, 5.0, False),
        ("1.5e2", 0.0, 150.0, False),
        ("~:", -math.inf, math.inf, False),
    ],
)
def test_parse_range(text: str, start: float, end: float, inside: bool) -> None:
    assert parse_range(text) == Range(start, end, inside)


@pytest.mark.parametrize(
    ("text", "value", "alerts"),
    [
        ("10", -1, True), ("10", 0, False), ("10", 10, False), ("10", 11, True),
        ("10:", 9.9, True), ("10:", 10, False), ("10:", 1e9, False),
        ("~:10", -1e9, False), ("~:10", 10.1, True),
        ("10:20", 9, True), ("10:20", 15, False), ("10:20", 21, True),
        ("@10:20", 9, False), ("@10:20", 10, True), ("@10:20", 20, True), ("@10:20", 21, False),
    ],
)
def test_range_alerts(text: str, value: float, alerts: bool) -> None:
    assert parse_range(text).alerts(value) is alerts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a threshold range\n  hint: use 10, 10:, ~:10, 10:20 or @10:20"),
        ("abc", "'abc' is not a threshold range\n  hint: use 10, 10:, ~:10, 10:20 or @10:20"),
        ("1:2:3", "'1:2:3' is not a threshold range\n  hint: use 10, 10:, ~:10, 10:20 or @10:20"),
        ("20:10", "threshold range '20:10': start 20 is greater than end 10"),
        ("@", "'@' is not a threshold range\n  hint: use 10, 10:, ~:10, 10:20 or @10:20"),
    ],
)
def test_parse_range_rejects(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_range(text)
    assert str(info.value) == message


def test_parse_perfdata_strict_names_the_bad_item() -> None:
    assert parse_perfdata("a=1 'b c'=2ms;;;0;") == [
        PerfDatum("a", 1.0), PerfDatum("b c", 2.0, "ms", min=0.0),
    ]
    with pytest.raises(ParseError, match=r"perfdata item 'x=abc': value 'abc' is not a number"):
        parse_perfdata("a=1 x=abc b=2")
    with pytest.raises(ParseError, match=r"perfdata item 'y=1;foo': .*'foo' is not a threshold"):
        parse_perfdata("y=1;foo")
    with pytest.raises(ParseError, match=r"perfdata item 'z=1;;;x': min 'x' is not a number"):
        parse_perfdata("z=1;;;x")
    with pytest.raises(ParseError, match="unterminated quoted label"):
        parse_perfdata("'open=1")


def test_value_u_is_nan() -> None:
    (datum,) = parse_perfdata("temp=U;60;80")
    assert math.isnan(datum.value)


@pytest.mark.parametrize(
    "text",
    ["", "\x00\x01\x02 | \xff\xfe", "|", "||||", "| | |\n|\n|", "'" * 1000, "=" * 10000,
     "a=1;" * 5000, "\n" * 1000, "x" * 200_000],
)
def test_parse_output_never_raises(text: str) -> None:
    out = parse_output(text)
    assert isinstance(out.summary, str)


def test_samples_are_normalized_to_base_units() -> None:
    out = parse_output((FIXTURES / "units.txt").read_text())
    values = {
        s.labels["label"]: (s.value, s.labels["uom"])
        for s in perfdata_samples("units", out.perfdata)
        if s.name == "watchkeeper_plugin_value"
    }
    assert values["t_s"] == (1.5, "s")
    assert values["t_ms"] == (pytest.approx(0.25), "s")
    assert values["t_us"] == (pytest.approx(40e-6), "s")
    assert values["b"] == (2048.0, "B")
    assert values["kb"] == (2048.0, "B")
    assert values["mb"] == (1024.0**2, "B")
    assert values["gb"] == (1024.0**3, "B")
    assert values["tb"] == (1024.0**4, "B")
    assert values["pct"] == (99.5, "%")
    assert values["cnt"] == (123.0, "c")
    assert values["plain"] == (7.0, "")
    assert values["temp"] == (42.0, "C")
    assert values["rate"] == (12.0, "req/s")


def test_samples_carry_thresholds_and_limits() -> None:
    out = parse_output((FIXTURES / "check_disk.txt").read_text())
    labels = {"check": "disk", "label": "/", "uom": "B"}
    assert perfdata_samples("disk", out.perfdata) == [
        Sample("watchkeeper_plugin_value", labels, 23818403840.0),
        Sample("watchkeeper_plugin_warning", labels, 243497277849.0),
        Sample("watchkeeper_plugin_critical", labels, 257024904396.0),
        Sample("watchkeeper_plugin_min", labels, 0.0),
        Sample("watchkeeper_plugin_max", labels, 270552530944.0),
    ]


def test_unknown_value_emits_no_value_sample() -> None:
    out = parse_output((FIXTURES / "unknown_value.txt").read_text())
    samples = perfdata_samples("sensors", out.perfdata)
    temp = [s for s in samples if s.labels["label"] == "temp"]
    assert [s.name for s in temp] == ["watchkeeper_plugin_warning", "watchkeeper_plugin_critical"]
    lower_bound = [s for s in perfdata_samples("x", parse_perfdata("a=1;10:"))]
    assert lower_bound[1] == Sample("watchkeeper_plugin_warning",
                                    {"check": "x", "label": "a", "uom": ""}, 10.0)
