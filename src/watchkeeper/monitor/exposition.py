"""Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text: parse and render.

Parsing turns a scrape body or an export file into :class:`~watchkeeper.monitor.model.Sample`
objects; histogram and summary series (``_bucket``, ``_sum``, ``_count``, ``quantile``)
become ordinary samples, exemplars are dropped. Timestamps come out in seconds: the
Prometheus text format writes integer milliseconds, OpenMetrics float seconds.

Two modes:

* strict (default): the first bad line raises :class:`~watchkeeper.errors.ParseError`
  with its line number, e.g. ``line 12: invalid value 'abc' for metric foo``.
  ``watchkeeper import`` uses it.
* tolerant (``strict=False``): bad lines are skipped and listed in
  :attr:`Exposition.issues`; the scrape check uses it so one misbehaving line of an
  exporter does not lose the rest.

Deliberately lenient in both modes (as Prometheus's own text parser is): blank
lines, free comments, whitespace between tokens and a trailing comma in a label set
are accepted in either format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike

from watchkeeper.errors import ParseError
from watchkeeper.monitor.model import Sample

__all__ = [
    "ACCEPT_HEADER",
    "OPENMETRICS_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "Exposition",
    "MetricFamily",
    "ParseIssue",
    "format_value",
    "is_openmetrics_content_type",
    "iter_openmetrics_file",
    "parse",
    "parse_families",
    "parse_text",
    "render_text",
]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
ACCEPT_HEADER = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

METRIC_TYPES = frozenset(
    {"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset",
     "untyped", "unknown"}
)

# Which sample names belong to a family of each type (beyond the family name itself).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("_sum", "_count", "_created"),
    "info": ("_info",),
}

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# One label pair; the value allows any escaped character, checked when unescaped.
_LABEL_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*')
_ESCAPE_RE = re.compile(r"\\(.)")
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_EOF_RE = re.compile(r"^# EOF[ \t\r]*$", re.MULTILINE)
_NAME_CACHE_MAX = 200_000


@dataclass(frozen=True, slots=True)
class ParseIssue:
    """One line the tolerant parser skipped, and why."""

    line: int
    message: str
    text: str = ""

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class MetricFamily:
    """The samples of one metric with its metadata (``# TYPE``, ``# HELP``, ``# UNIT``).

    ``type`` is ``untyped`` (text format) or ``unknown`` (OpenMetrics) when no
    ``# TYPE`` line named the family.
    """

    name: str
    type: str
    help: str | None = None
    unit: str | None = None
    samples: list[Sample] = field(default_factory=list)
    _typed: bool = False


@dataclass(slots=True)
class Exposition:
    """Everything one parse produced."""

    samples: list[Sample]
    families: list[MetricFamily]
    issues: list[ParseIssue]
    openmetrics: bool


class _LineError(Exception):
    """A bad line; the parser turns it into a ParseError or a ParseIssue."""


def is_openmetrics_content_type(content_type: str | None) -> bool | None:
    """True for OpenMetrics, False for the text format, None when the type says neither."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/openmetrics-text":
        return True
    if media == "text/plain":
        return False
    return None


def _unescape_label(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        ch = m.group(1)
        try:
            return _LABEL_ESCAPES[ch]
        except KeyError:
            raise _LineError(f"invalid escape sequence '\\{ch}' in label value") from None

    return _ESCAPE_RE.sub(sub, value)


def _unescape_help(value: str) -> str:
    # HELP text escapes only backslash and newline (and '"' in OpenMetrics); anything
    # else after a backslash is kept verbatim, as Prometheus does.
    return _ESCAPE_RE.sub(lambda m: _LABEL_ESCAPES.get(m.group(1), m.group(0)), value)


class _Parser:
    """Line-by-line state machine shared by the in-memory and streaming parsers."""

    def __init__(self, *, openmetrics: bool, strict: bool, default_timestamp: float | None,
                 keep_families: bool) -> None:
        self.openmetrics = openmetrics
        self.strict = strict
        self.default_timestamp = default_timestamp
        self.keep_families = keep_families
        self.samples: list[Sample] = []
        self.families: list[MetricFamily] = []
        self.issues: list[ParseIssue] = []
        self.lineno = 0
        self.eof = False
        self._fam: MetricFamily | None = None
        self._typed_names: set[str] = set()
        self._names: set[str] = set()

    # -- errors --------------------------------------------------------------
    def _bad(self, lineno: int, message: str, text: str) -> None:
        if self.strict:
            raise ParseError(message, line=lineno, text=text)
        self.issues.append(ParseIssue(lineno, message, text))

    # -- lines ---------------------------------------------------------------
    def feed(self, lines: Iterable[str]) -> None:
        """Parse lines (without their newline) following those already fed."""
        samples = self.samples
        append = samples.append
        sample = self._sample
        lineno = self.lineno
        for line in lines:
            lineno += 1
            if self.eof:
                self.lineno = lineno
                self._bad(lineno, "content after '# EOF'", line)
                continue
            if not line:
                continue
            if line[-1] == "\r":
                line = line[:-1]
                if not line:
                    continue
            if line[0] == "#":
                self.lineno = lineno
                try:
                    self._comment(line)
                except _LineError as exc:
                    self._bad(lineno, str(exc), line)
                continue
            try:
                append(sample(line))
            except _LineError as exc:
                self.lineno = lineno
                self._bad(lineno, str(exc), line)
        self.lineno = lineno

    def finish(self) -> None:
        if self.openmetrics and not self.eof and self.strict:
            raise ParseError("OpenMetrics text must end with '# EOF'", line=self.lineno + 1,
                             hint="the file may be truncated")

    def _comment(self, line: str) -> None:
        parts = line.split(None, 3)
        if len(parts) < 2:
            return
        keyword = parts[1]
        if keyword == "EOF" and len(parts) == 2 and line.startswith("# EOF"):
            if self.openmetrics:
                self.eof = True
            return
        if keyword not in ("HELP", "TYPE", "UNIT") or parts[0] != "#":
            return  # a free comment
        if len(parts) < 3:
            raise _LineError(f"'# {keyword}' without a metric name")
        name = parts[2]
        if not _NAME_RE.fullmatch(name):
            raise _LineError(f"invalid metric name {name!r} in '# {keyword}'")
        text = parts[3] if len(parts) > 3 else ""
        fam = self._fam
        if fam is None or fam.name != name:
            fam = self._new_family(name)
        elif fam.samples and keyword == "TYPE":
            raise _LineError(f"'# TYPE' for metric {name} after its samples")
        if keyword == "TYPE":
            mtype = text.strip().lower()
            if mtype not in METRIC_TYPES:
                raise _LineError(f"unknown metric type {text.strip()!r} for metric {name}")
            if name in self._typed_names:
                raise _LineError(f"second '# TYPE' line for metric {name}")
            self._typed_names.add(name)
            fam.type = mtype
            fam._typed = True
        elif keyword == "HELP":
            if fam.help is not None:
                raise _LineError(f"second '# HELP' line for metric {name}")
            fam.help = _unescape_help(text) if "\\" in text else text
        else:
            fam.unit = text.strip()

    def _new_family(self, name: str) -> MetricFamily:
        fam = MetricFamily(name, "unknown" if self.openmetrics else "untyped")
        self._fam = fam
        if self.keep_families:
            self.families.append(fam)
        return fam

    def _labels(self, line: str, pos: int, name: str) -> tuple[dict[str, str], int]:
        labels: dict[str, str] = {}
        end = len(line)
        match = _LABEL_RE.match
        while True:
            while pos < end and line[pos] in " \t":
                pos += 1
            if pos < end and line[pos] == "}":
                return labels, pos + 1
            m = match(line, pos)
            if m is None:
                raise _LineError(f"invalid label set for metric {name} at column {pos + 1}")
            key, value = m.group(1, 2)
            if "\\" in value:
                value = _unescape_label(value)
            if key in labels:
                raise _LineError(f"duplicate label {key!r} for metric {name}")
            labels[key] = value
            pos = m.end()
            ch = line[pos] if pos < end else ""
            if ch == ",":
                pos += 1
            elif ch == "}":
                return labels, pos + 1
            else:
                raise _LineError(f"expected ',' or '}}' in the labels of metric {name} "
                                 f"at column {pos + 1}")

    def _sample(self, line: str) -> Sample:
        brace = line.find("{")
        labels: dict[str, str]
        if brace > 0:
            name = line[:brace].rstrip()
            if " " in name or "\t" in name:  # that brace opens an exemplar, not labels
                brace = -1
        if brace > 0:
            labels, end = self._labels(line, brace + 1, name)
            rest = line[end:].split()
        else:
            rest = line.split()
            name = rest[0]
            del rest[0]
            labels = {}
        if name not in self._names:
            if not _NAME_RE.fullmatch(name):
                raise _LineError(f"invalid metric name {name!r}")
            if len(self._names) > _NAME_CACHE_MAX:
                self._names.clear()
            self._names.add(name)
        n = len(rest)
        if n > 1 and "#" in rest:
            if not self.openmetrics:
                raise _LineError(f"exemplars are only allowed in OpenMetrics (metric {name})")
            n = rest.index("#")
        if n == 0:
            raise _LineError(f"missing value for metric {name}")
        text = rest[0]
        try:
            value = float(text)
        except ValueError:
            raise _LineError(f"invalid value {text!r} for metric {name}") from None
        if "_" in text:
            raise _LineError(f"invalid value {text!r} for metric {name}")
        ts = self.default_timestamp
        if n > 1:
            text = rest[1]
            if "_" in text:
                raise _LineError(f"invalid timestamp {text!r} for metric {name}")
            try:
                ts = float(text) if self.openmetrics else int(text) / 1000.0
            except ValueError:
                raise _LineError(f"invalid timestamp {text!r} for metric {name}") from None
            if not math.isfinite(ts):
                raise _LineError(f"invalid timestamp {text!r} for metric {name}")
            if n > 2:
                raise _LineError(f"unexpected text {rest[2]!r} after the timestamp of metric "
                                 f"{name}")
        sample = Sample(name, labels, value, ts)
        if self.keep_families:
            self._add_to_family(sample)
        return sample

    def _add_to_family(self, sample: Sample) -> None:
        name = sample.name
        fam = self._fam
        if fam is None or not (
            name == fam.name
            or (name.startswith(fam.name) and name[len(fam.name):] in _SUFFIXES.get(fam.type, ()))
        ):
            fam = self._new_family(name)
        if (fam.type == "histogram" or fam.type == "gaugehistogram") and name.endswith(
                "_bucket") and "le" not in sample.labels:
            raise _LineError(f"histogram bucket {name} without an 'le' label")
        fam.samples.append(sample)


def _detect(text: str, openmetrics: bool | None) -> bool:
    if openmetrics is not None:
        return openmetrics
    return _EOF_RE.search(text) is not None


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse(text: str, *, openmetrics: bool | None = None, default_timestamp: float | None = None,
          strict: bool = True, families: bool = True) -> Exposition:
    """Parse a whole exposition: samples, families and (tolerant mode) the skipped lines.

    ``openmetrics`` None detects the format from a ``# EOF`` line; pass the answer of
    :func:`is_openmetrics_content_type` when a Content-Type is known.
    ``default_timestamp`` (seconds) is given to samples that carry none.
    ``families=False`` skips the grouping into families (a little faster).

    Raises ParseError (strict mode) at the first bad line, or when OpenMetrics text
    lacks its ``# EOF`` terminator.
    """
    om = _detect(text, openmetrics)
    p = _Parser(openmetrics=om, strict=strict, default_timestamp=default_timestamp,
                keep_families=families)
    p.feed(_split(text))
    p.finish()
    return Exposition(p.samples, p.families, p.issues, om)


def parse_text(text: str, *, openmetrics: bool | None = None,
               default_timestamp: float | None = None, strict: bool = True) -> list[Sample]:
    """Parse the text format 0.0.4 or OpenMetrics 1.0 text into samples (see :func:`parse`).

    With ``strict=False`` bad lines are dropped silently; call :func:`parse` to see them.
    Raises ParseError in strict mode.
    """
    return parse(text, openmetrics=openmetrics, default_timestamp=default_timestamp,
                 strict=strict, families=False).samples


def parse_families(text: str, *, openmetrics: bool | None = None,
                   default_timestamp: float | None = None,
                   strict: bool = True) -> list[MetricFamily]:
    """Parse into metric families (name, type, help, unit, samples). Raises ParseError."""
    return parse(text, openmetrics=openmetrics, default_timestamp=default_timestamp,
                 strict=strict).families


def iter_openmetrics_file(path: str | PathLike[str], batch: int = 50_000, *,
                          strict: bool = True, default_timestamp: float | None = None,
                          chunk_bytes: int = 1 << 20) -> Iterator[list[Sample]]:
    """Stream an OpenMetrics file (as ``promtool tsdb create-blocks-from openmetrics`` reads)
    in lists of at most ``batch`` samples, holding about one batch and one chunk in memory.

    Timestamps are float seconds. Raises ParseError (strict mode) with the line number,
    including for a file that does not end with ``# EOF``; OSError if it cannot be read.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    p = _Parser(openmetrics=True, strict=strict, default_timestamp=default_timestamp,
                keep_families=False)
    tail = ""
    with open(path, encoding="utf-8", newline="") as f:
        while True:
            chunk = f.read(chunk_bytes)
            if not chunk:
                break
            lines = (tail + chunk).split("\n")
            tail = lines.pop()
            p.feed(lines)
            while len(p.samples) >= batch:
                out, p.samples = p.samples[:batch], p.samples[batch:]
                yield out
        if tail:
            p.feed([tail])
    p.finish()
    while p.samples:
        out, p.samples = p.samples[:batch], p.samples[batch:]
        yield out


# -- rendering ------------------------------------------------------------------

_TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram",
               "summary": "summary", "untyped": "untyped", "unknown": "untyped",
               "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram"}
_GROUPED_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def format_value(value: float) -> str:
    """A float as the text format writes it: ``NaN``, ``+Inf``, ``-Inf``, shortest digits."""
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v.is_integer() and -1e15 < v < 1e15:
        return str(int(v))
    return repr(v)


def _escape_label(value: str) -> str:
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if '"' in value:
        value = value.replace('"', '\\"')
    if "\n" in value:
        value = value.replace("\n", "\\n")
    return value


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _family_of(name: str, types: Mapping[str, str]) -> str:
    if name in types:
        return name
    for suffix in _GROUPED_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if types.get(base) in ("histogram", "summary", "gaugehistogram"):
                return base
    return name


def render_text(samples: Iterable[Sample], types: Mapping[str, str] | None = None,
                help: Mapping[str, str] | None = None) -> str:
    """Write samples in the Prometheus text format 0.0.4 (Content-Type :data:`TEXT_CONTENT_TYPE`).

    Samples are grouped by family (first appearance order), each family written once
    with its ``# HELP`` and ``# TYPE`` lines. ``types`` and ``help`` are keyed by family
    name: ``{"http_latency_seconds": "histogram"}`` groups its ``_bucket``/``_sum``/
    ``_count`` series; a counter keyed ``foo`` also types a ``foo_total`` sample.
    Timestamps are written as integer milliseconds.
    """
    types = types or {}
    help = help or {}
    groups: dict[str, list[Sample]] = {}
    fam_cache: dict[str, str] = {}
    for s in samples:
        if types:
            fam = fam_cache.get(s.name)
            if fam is None:
                fam = fam_cache[s.name] = _family_of(s.name, types)
        else:
            fam = s.name
        group = groups.get(fam)
        if group is None:
            groups[fam] = [s]
        else:
            group.append(s)
    out: list[str] = []
    for fam, group in groups.items():
        mtype = types.get(fam)
        doc = help.get(fam)
        if mtype is None and fam.endswith("_total") and types.get(fam[:-6]) == "counter":
            mtype = "counter"
            doc = help.get(fam[:-6]) if doc is None else doc
        if doc is not None:
            out.append(f"# HELP {fam} {_escape_help(doc)}")
        if mtype is not None:
            out.append(f"# TYPE {fam} {_TEXT_TYPES.get(mtype, 'untyped')}")
        for s in group:
            if s.labels:
                body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels.items())
                line = f"{s.name}{{{body}}} {format_value(s.value)}"
            else:
                line = f"{s.name} {format_value(s.value)}"
            if s.timestamp is not None:
                line = f"{line} {round(s.timestamp * 1000)}"
            out.append(line)
    if not out:
        return ""
    out.append("")
    return "\n".join(out)
