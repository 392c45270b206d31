"""Go ``text/template``, the subset Prometheus alert labels and annotations use.

Rule files written for Prometheus template their labels and annotations
with Go templates: ``{{ $labels.instance }}``, ``{{ $value | humanize }}``,
``{{ if gt $value 90.0 }}...{{ end }}``, ``{{ with query "up" }}...{{ end }}``.
This module parses and runs them with Prometheus's semantics: the data is
``.Labels``, ``.ExternalLabels``, ``.ExternalURL`` and ``.Value``, the variables
``$labels``, ``$externalLabels``, ``$externalURL`` and ``$value`` are
predefined, a missing map key is the empty string (``missingkey=zero``), and
numbers print as Go prints them (``1e+06``, ``0.5``, ``NaN``, ``+Inf``).

Supported: text with ``{{- -}}`` trim markers and ``{{/* comments */}}``;
pipelines with ``|``, parenthesised pipelines, ``$var :=``/``$var =``;
``if``/``else if``/``else``, ``range`` (with ``$i, $e :=`` and ``else``),
``with`` (and ``else with``), ``define``/``template``; Go's ``and or not eq ne
lt le gt ge len index print printf println html js urlquery``; Prometheus's
``humanize humanize1024 humanizeDuration humanizePercentage humanizeTimestamp
title toUpper toLower reReplaceAll match query first label value strvalue
sortByLabel args safeHtml pathPrefix externalURL graphLink tableLink
parseDuration toTime toDuration``.

Errors are :class:`TemplateError` (an InputError) whose message names the
line and column in the template text, as ``line 1, column 12: ...``.

The engine lives in the private package :mod:`watchkeeper.alerting._gotemplate`
(lexer, parser, executor, functions, Go number formatting); this module is its
public face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from watchkeeper.alerting._gotemplate.errors import TemplateError
from watchkeeper.alerting._gotemplate.executor import Executor
from watchkeeper.alerting._gotemplate.goformat import go_format_float
from watchkeeper.alerting._gotemplate.humanize import (
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
)
from watchkeeper.alerting._gotemplate.lexer import Lexer
from watchkeeper.alerting._gotemplate.parser import Parser
from watchkeeper.alerting._gotemplate.values import QueryFunc, QuerySample, _Data

__all__ = [
    "QueryFunc",
    "QuerySample",
    "Template",
    "TemplateError",
    "expand",
    "go_format_float",
    "humanize",
    "humanize1024",
    "humanize_duration",
    "humanize_percentage",
    "humanize_timestamp",
    "parse_template",
]

#: The variables Prometheus defines for alert label and annotation templates.
ALERT_VARIABLES = ("$labels", "$externalLabels", "$externalURL", "$value")


class Template:
    """A parsed template; :meth:`execute` runs it. Parse errors raise :class:`TemplateError`."""

    def __init__(self, text: str, variables: Sequence[str] = ALERT_VARIABLES) -> None:
        self.text = text
        self._lexer = Lexer(text)
        parser = Parser(self._lexer, self._lexer.tokens(), variables)
        self._nodes = parser.parse()
        self._defines = parser.defines

    def execute(self, data: Any, *, variables: Mapping[str, Any] | None = None,
                query: QueryFunc | None = None, external_url: str = "") -> str:
        """Run with ``data`` as dot (and ``$``) and the given predefined variables."""
        ex = Executor(self._lexer, self._defines, query, external_url)
        scope: list[tuple[str, Any]] = [("$", data)]
        scope.extend((variables or {}).items())
        try:
            ex.run(self._nodes, data, scope)
        except RecursionError:
            raise TemplateError("template nested too deeply") from None
        return "".join(ex.out)


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Parse (and cache) a template. Raises :class:`TemplateError` naming line and column."""
    return Template(text)


def expand(text: str, *, labels: Mapping[str, str], value: float,
           external_labels: Mapping[str, str] | None = None, external_url: str = "",
           query: QueryFunc | None = None) -> str:
    """Expand an alert label or annotation template as Prometheus does.

    ``$labels``/``.Labels`` are the alert's labels, ``$value``/``.Value`` the
    value of the expression for it. Raises :class:`TemplateError` on parse or
    execution errors (Prometheus then shows ``<error expanding template: ...>``;
    :func:`watchkeeper.alerting.rules` does the same).
    """
    if "{{" not in text:
        return text
    tmpl = parse_template(text)
    lab = dict(labels)
    ext = dict(external_labels or {})
    data = _Data(lab, ext, external_url, value)
    variables = {"$labels": lab, "$externalLabels": ext, "$externalURL": external_url,
                 "$value": value}
    return tmpl.execute(data, variables=variables, query=query, external_url=external_url)
