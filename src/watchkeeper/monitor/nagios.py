"""Nagios / Monitoring Plugins output: text, long text, performance data and thresholds.

Implements the format of the Monitoring Plugins development guidelines:

* The first line of output is ``SUMMARY | PERFDATA``; later lines are long text,
  and everything after the first ``|`` in the long text is more perfdata, which may
  span several lines (:func:`parse_output`).
* Perfdata is whitespace-separated items
  ``'label'=value[UOM];[warn];[crit];[min];[max]``. Labels may be quoted with single
  quotes (``''`` is a literal quote); ``value`` may be ``U`` (the plugin could not
  measure it); trailing empty fields may be left out (:func:`parse_perfdata`).
* Thresholds are ranges: ``10`` (alert outside 0..10), ``10:`` (alert below 10),
  ``~:10`` (alert above 10), ``10:20`` (alert outside 10..20), ``@10:20`` (alert
  inside 10..20) (:func:`parse_range`).

Perfdata becomes samples (:func:`perfdata_samples`). The naming, fixed here so that
queries and dashboards can rely on it:

* ``watchkeeper_plugin_value{check="NAME", label="LABEL", uom="UOM"}`` holds the value.
* ``watchkeeper_plugin_warning``, ``watchkeeper_plugin_critical``, ``watchkeeper_plugin_min``
  and ``watchkeeper_plugin_max`` carry the same labels and are emitted only where the
  plugin gave that field. For a warning or critical range the sample is the bound the
  value is compared against: the upper end when it is finite (``10``, ``5:10``,
  ``~:10``, ``@5:10``), else the lower end (``10:``); a range open on both ends
  emits nothing.
* Values are normalized to base units and ``uom`` names the base unit: ``s``,
  ``ms``, ``us`` become seconds (``uom="s"``); ``B``, ``KB``, ``MB``, ``GB``,
  ``TB`` become bytes (``uom="B"``), counting in powers of 1024 as the Monitoring
  Plugins do (``KiB``..``TiB`` are accepted too); ``%`` and ``c`` (a counter) are
  kept as they are; no UOM gives ``uom=""``; any other UOM is kept as given, value
  unchanged.
* A value of ``U`` produces no ``watchkeeper_plugin_value`` sample (the thresholds,
  min and max of that item are still emitted).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from watchkeeper.errors import ParseError
from watchkeeper.monitor.model import Sample

__all__ = [
    "PerfDatum",
    "PluginOutput",
    "Range",
    "parse_output",
    "parse_perfdata",
    "parse_range",
    "perfdata_samples",
]

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_VALUE_RE = re.compile(rf"({_NUMBER}|U)(.*)", re.DOTALL)

# uom -> (base uom, factor)
_UNITS: dict[str, tuple[str, float]] = {
    "s": ("s", 1.0), "ms": ("s", 1e-3), "us": ("s", 1e-6),
    "B": ("B", 1.0), "KB": ("B", 1024.0), "MB": ("B", 1024.0**2),
    "GB": ("B", 1024.0**3), "TB": ("B", 1024.0**4),
    "KiB": ("B", 1024.0), "MiB": ("B", 1024.0**2), "GiB": ("B", 1024.0**3),
    "TiB": ("B", 1024.0**4),
}


@dataclass(frozen=True, slots=True)
class Range:
    """A Nagios threshold range. ``alerts(value)`` says whether ``value`` breaches it.

    Without ``inside`` a value alerts when it lies outside ``start..end``; with
    ``inside`` (written ``@``) when it lies within, ends included.
    """

    start: float
    end: float
    inside: bool = False

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def bound(self) -> float | None:
        """The bound a value is compared against: the finite upper end, else the lower end."""
        if math.isfinite(self.end):
            return self.end
        if math.isfinite(self.start):
            return self.start
        return None

    def scaled(self, factor: float) -> Range:
        return Range(self.start * factor, self.end * factor, self.inside)

    def __str__(self) -> str:
        def num(v: float) -> str:
            return f"{v:.15g}"

        start = "~" if self.start == -math.inf else num(self.start)
        end = "" if self.end == math.inf else num(self.end)
        text = end if start == "0" and end else f"{start}:{end}"
        return ("@" if self.inside else "") + text


def parse_range(text: str) -> Range:
    """Parse a threshold range (``10``, ``10:``, ``~:10``, ``10:20``, ``@10:20``).

    Raises ParseError naming the text when it is not a range or its start exceeds its end.
    """
    raw = text
    text = text.strip()
    inside = text.startswith("@")
    if inside:
        text = text[1:]
    if ":" in text:
        start_text, end_text = text.split(":", 1)
    else:
        start_text, end_text = "0", text
    if start_text == "~":
        start = -math.inf
    elif start_text == "":
        start = 0.0
    elif _NUMBER_RE.fullmatch(start_text):
        start = float(start_text)
    else:
        raise _range_error(raw)
    if end_text == "" and ":" in text:
        end = math.inf
    elif _NUMBER_RE.fullmatch(end_text):
        end = float(end_text)
    else:
        raise _range_error(raw)
    if start > end:
        raise ParseError(f"threshold range {raw!r}: start {start:g} is greater than end {end:g}",
                         text=raw)
    return Range(start, end, inside)


def _range_error(raw: str) -> ParseError:
    return ParseError(f"{raw!r} is not a threshold range",
                      hint="use 10, 10:, ~:10, 10:20 or @10:20", text=raw)


@dataclass(frozen=True, slots=True)
class PerfDatum:
    """One perfdata item as the plugin wrote it (``value`` is NaN for ``U``)."""

    label: str
    value: float
    uom: str = ""
    warn: Range | None = None
    crit: Range | None = None
    min: float | None = None
    max: float | None = None


@dataclass(slots=True)
class PluginOutput:
    """A plugin's output split per the guidelines.

    ``warnings`` lists perfdata items that were malformed and left out; the
    tolerant :func:`parse_output` collects them instead of raising.
    """

    summary: str
    long_text: str = ""
    perfdata: list[PerfDatum] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _split_items(text: str) -> tuple[list[str], list[str]]:
    """Split perfdata on whitespace outside single quotes; return items and errors."""
    items: list[str] = []
    errors: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            current.append(ch)
            if ch == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    current.append("'")
                    i += 1
                else:
                    quoted = False
        elif ch.isspace():
            if current:
                items.append("".join(current))
                current = []
        else:
            if ch == "'" and not current:
                quoted = True
            current.append(ch)
        i += 1
    if current:
        item = "".join(current)
        if quoted:
            errors.append(f"perfdata item {item.strip()!r}: unterminated quoted label")
        else:
            items.append(item)
    return items, errors


def _parse_item(item: str) -> PerfDatum:
    if item.startswith("'"):
        end = 1
        label_chars: list[str] = []
        while end < len(item):
            if item[end] == "'":
                if item[end + 1:end + 2] == "'":
                    label_chars.append("'")
                    end += 2
                    continue
                break
            label_chars.append(item[end])
            end += 1
        label = "".join(label_chars)
        rest = item[end + 1:]
        if not rest.startswith("="):
            raise ParseError(f"perfdata item {item!r}: expected '=' after the quoted label",
                             text=item)
        rest = rest[1:]
    else:
        if "=" not in item:
            raise ParseError(f"perfdata item {item!r}: expected label=value", text=item)
        label, rest = item.split("=", 1)
    if not label:
        raise ParseError(f"perfdata item {item!r}: empty label", text=item)
    fields = rest.split(";")
    if len(fields) > 5:
        raise ParseError(f"perfdata item {item!r}: more than 5 fields "
                         "(value;warn;crit;min;max)", text=item)
    fields += [""] * (5 - len(fields))
    m = _VALUE_RE.fullmatch(fields[0])
    if not m:
        raise ParseError(f"perfdata item {item!r}: value {fields[0]!r} is not a number or U",
                         text=item)
    value = math.nan if m.group(1) == "U" else float(m.group(1))
    uom = m.group(2)
    if any(ch.isspace() or ch == "=" for ch in uom) or uom[:1] in set("0123456789.+-"):
        raise ParseError(f"perfdata item {item!r}: bad unit {uom!r}", text=item)
    try:
        warn = parse_range(fields[1]) if fields[1] else None
        crit = parse_range(fields[2]) if fields[2] else None
    except ParseError as exc:
        raise ParseError(f"perfdata item {item!r}: {exc.message}", text=item) from None
    limits: list[float | None] = []
    for name, text in (("min", fields[3]), ("max", fields[4])):
        if not text:
            limits.append(None)
        elif _NUMBER_RE.fullmatch(text):
            limits.append(float(text))
        else:
            raise ParseError(f"perfdata item {item!r}: {name} {text!r} is not a number",
                             text=item)
    return PerfDatum(label, value, uom, warn, crit, limits[0], limits[1])


def _parse_perfdata_tolerant(text: str) -> tuple[list[PerfDatum], list[str]]:
    items, errors = _split_items(text)
    out: list[PerfDatum] = []
    for item in items:
        try:
            out.append(_parse_item(item))
        except ParseError as exc:
            errors.append(exc.message)
    return out, errors


def parse_perfdata(text: str) -> list[PerfDatum]:
    """Parse perfdata items, strictly.

    Raises ParseError naming the first malformed item.
    """
    data, errors = _parse_perfdata_tolerant(text)
    if errors:
        raise ParseError(errors[0], text=text)
    return data


def parse_output(text: str) -> PluginOutput:
    """Split plugin output into summary, long text and perfdata. Never raises.

    Malformed perfdata items are left out and described in ``warnings``; output
    that follows no format at all becomes the summary (its first line) and long text.
    """
    text = text.replace("\r\n", "\n").replace("\x00", "")
    first, _, rest = text.partition("\n")
    summary, sep, perf = first.partition("|")
    perf_parts = [perf] if sep else []
    long_text, sep, more = rest.partition("|")
    if sep:
        perf_parts.append(more)
    data, errors = _parse_perfdata_tolerant(" ".join(perf_parts))
    return PluginOutput(summary.strip(), long_text.strip("\n").rstrip(), data,
                        errors)


def _normalize(uom: str) -> tuple[str, float]:
    return _UNITS.get(uom, (uom, 1.0))


def perfdata_samples(check: str, data: Sequence[PerfDatum]) -> list[Sample]:
    """Turn perfdata into samples named and normalized as the module docstring says."""
    out: list[Sample] = []
    for d in data:
        uom, factor = _normalize(d.uom)
        labels = {"check": check, "label": d.label, "uom": uom}
        if not math.isnan(d.value):
            out.append(Sample("watchkeeper_plugin_value", labels, d.value * factor))
        for name, rng in (("warning", d.warn), ("critical", d.crit)):
            bound = rng.bound() if rng is not None else None
            if bound is not None:
                out.append(Sample(f"watchkeeper_plugin_{name}", labels, bound * factor))
        for name, limit in (("min", d.min), ("max", d.max)):
            if limit is not None:
                out.append(Sample(f"watchkeeper_plugin_{name}", labels, limit * factor))
    return out
