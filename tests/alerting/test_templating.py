"""Go-template subset of alert labels/annotations; expected outputs are Prometheus's documented ones."""

from __future__ import annotations

import math

import pytest

from watchkeeper.alerting.templating import (
    QuerySample,
    Template,
    TemplateError,
    expand,
    go_format_float,
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
)


def run(text: str, data: object = None, **kw: object) -> str:
    return Template(text).execute(data, **kw)  # type: ignore[arg-type]


# -- the humanize family: the cases of Prometheus's template tests and docs ----------------------

@pytest.mark.parametrize(("value", "want"), [
    (0.0, "0"), (1.0, "1"), (1234567.0, "1.235M"), (0.12, "120m"), (1000, "1k"), (999, "999"),
    (-1234567.0, "-1.235M"), (0.000001, "1u"), (123456789012.0, "123.5G"), (2000, "2k"),
    ("1234567", "1.235M"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
])
def test_humanize(value: object, want: str) -> None:
    assert humanize(value) == want


@pytest.mark.parametrize(("value", "want"), [
    (0.0, "0"), (1.0, "1"), (1048576.0, "1Mi"), (0.12, "0.12"), (1024, "1ki"), (1536, "1.5ki"),
    (8589934592, "8Gi"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
])
def test_humanize1024(value: float, want: str) -> None:
    assert humanize1024(value) == want


@pytest.mark.parametrize(("value", "want"), [
    (0, "0s"), (1, "1s"), (60, "1m 0s"), (3600, "1h 0m 0s"), (86400, "1d 0h 0m 0s"),
    (86400 + 3600, "1d 1h 0m 0s"), (-(86400 * 2 + 3600 * 3 + 60 * 4 + 5), "-2d 3h 4m 5s"),
    (899.99, "14m 59s"), (0.1, "100ms"), (0.0001, "100us"), (0.12345, "123.5ms"), (60.1, "1m 0s"),
    (60.5, "1m 0s"), (1.2345, "1.234s"), (12.345, "12.35s"), (3, "3s"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
])
def test_humanize_duration(value: float, want: str) -> None:
    assert humanize_duration(value) == want


@pytest.mark.parametrize(("value", "want"), [
    (-0.22222, "-22.22%"), (0.0, "0%"), (0.1234567, "12.35%"), (1.23456, "123.5%"), (0.9, "90%"),
])
def test_humanize_percentage(value: float, want: str) -> None:
    assert humanize_percentage(value) == want


@pytest.mark.parametrize(("value", "want"), [
    (1435065584.128, "2015-06-23 13:19:44.128 +0000 UTC"),
    (1435065584, "2015-06-23 13:19:44 +0000 UTC"),
    ("1435065584.128", "2015-06-23 13:19:44.128 +0000 UTC"),
    (0, "1970-01-01 00:00:00 +0000 UTC"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
])
def test_humanize_timestamp(value: object, want: str) -> None:
    assert humanize_timestamp(value) == want


def test_humanize_in_templates_as_prometheus_tests_them() -> None:
    assert run("{{ range . }}{{ humanize . }}:{{ end }}", [0.0, 1.0, 1234567.0, .12]) == "0:1:1.235M:120m:"
    assert run("{{ range . }}{{ humanize1024 . }}:{{ end }}", [0.0, 1.0, 1048576.0, .12]) == "0:1:1Mi:0.12:"
    assert run("{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:"
               "{{humanizeTimestamp .}}:{{ end }}", [math.inf, -math.inf, math.nan]) == \
        "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"
    assert run("{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:"
               "{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}") == \
        "-22.22%:0%:12.35%:123.5%"
    assert run("{{ 1435065584.128 | humanizeTimestamp }}") == "2015-06-23 13:19:44.128 +0000 UTC"


def test_humanize_rejects_text_that_is_no_number() -> None:
    with pytest.raises(TemplateError, match='parsing "abc": invalid syntax'):
        humanize("abc")


@pytest.mark.parametrize(("value", "want"), [
    (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.5, "0.5"), (0.0001, "0.0001"),
    (0.00001, "1e-05"), (100.0, "100"), (-2.5, "-2.5"), (3.0, "3"), (math.nan, "NaN"), (math.inf, "+Inf"),
    (0.1 + 0.2, "0.30000000000000004"),
])
def test_values_print_as_go_prints_float64(value: float, want: str) -> None:
    assert go_format_float(value) == want
    assert run("{{ . }}", value) == want


# -- Prometheus's other template functions -------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("plain text", "plain text"),
    ("{{ 1 }}", "1"),
    ('{{ "<b>" }}', "<b>"),
    ('{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}', "1 2"),
    ('{{ reReplaceAll "(a)b" "x$1" "ab" }}', "xa"),
    ('{{ reReplaceAll "(?P<host>[^:]+):.*" "${host}" "web1:9100" }}', "web1"),
    ('{{ "aa bb CC" | title }}', "Aa Bb CC"),
    ('{{ "aa bb CC" | toUpper }}', "AA BB CC"),
    ('{{ "aA bB CC" | toLower }}', "aa bb cc"),
    ('{{ match "a+" "aa" }} {{ match "a+" "b" }}', "true false"),
    ('{{ graphLink "up" }}', "/graph?g0.expr=up&g0.tab=0"),
    ('{{ tableLink "up" }}', "/graph?g0.expr=up&g0.tab=1"),
    ('{{ printf "%.2f%%" 12.3456 }} {{ printf "%s=%d" "a" 3 }} {{ printf "%v" 1e6 }}', "12.35% a=3 1e+06"),
    ('{{ printf "%5.1f|%-4s|" 2.25 "ab" }}', "  2.2|ab  |"),
    ("{{/* a comment */}}a {{- /* trimmed */ -}} b", "ab"),
    ("a  {{- 1 -}}  b", "a1b"),
    ("{{ if false }}x{{ else if true }}y{{ else }}z{{ end }}", "y"),
    ("{{ with $x := 5 }}{{ $x }}{{ end }}{{ with 0 }}no{{ else }}empty{{ end }}", "5empty"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
    ('{{ if and (gt 3.0 2.0) (lt 1 2) (not false) }}yes{{ end }}', "yes"),
    ('{{ or "" "fallback" }} {{ and 1 0 }}', "fallback 0"),
    ('{{ eq "a" "b" "a" }} {{ ne 1 2 }} {{ le 2.0 2.0 }} {{ ge 1 2 }}', "true true true false"),
    ('{{ len "abc" }} {{ index "abc" 1 }}', "3 98"),
    ('{{ "x" | printf "%s-%s" "y" }}', "y-x"),
    ("{{ toDuration 90.5 }} {{ parseDuration \"1h30m\" }}", "1m30.5s 5400"),
])
def test_template_functions(text: str, want: str) -> None:
    assert run(text) == want


def test_range_over_lists_and_maps() -> None:
    assert run("{{ range $i, $e := . }}{{ $i }}={{ $e }},{{ end }}", ["a", "b"]) == "0=a,1=b,"
    assert run("{{ range $k, $v := . }}{{ $k }}:{{ $v }} {{ end }}", {"b": "2", "a": "1"}) == "a:1 b:2 "
    assert run("{{ range . }}x{{ else }}none{{ end }}", []) == "none"
    assert run("{{ range . }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}"
               "{{ . }}{{ end }}", [1, 2, 3, 4, 5]) == "13"


def query_results(q: str) -> list[QuerySample]:
    assert q == 'metric{job="x"}'
    return [QuerySample({"__name__": "metric", "instance": "b"}, 21.0),
            QuerySample({"__name__": "metric", "instance": "a"}, 11.0)]


def test_query_first_label_value_and_sort_by_label() -> None:
    assert run('{{ query "metric{job=\\"x\\"}" | first | value }}', query=query_results) == "21"
    assert run('{{ with query `metric{job="x"}` }}{{ . | first | label "instance" }}{{ end }}',
               query=query_results) == "b"
    assert run('{{ range query `metric{job="x"}` | sortByLabel "instance" }}{{ .Labels.instance }}:'
               '{{ .Value }}: {{ end }}', query=query_results) == "a:11: b:21: "
    assert run('{{ $x := query `metric{job="x"}` | first }}[{{ $x.Labels.missing }}]',
               query=query_results) == "[]"


def test_alert_data_and_variables() -> None:
    out = expand("{{ $labels.instance }} {{ .Labels.instance }} {{ $value }} {{ .Value | humanize }} "
                 "{{ $externalLabels.site }} {{ $labels.missing }}|{{ $externalURL }}",
                 labels={"instance": "web1"}, value=1234567.0, external_labels={"site": "fra"},
                 external_url="http://wk:8470")
    assert out == "web1 web1 1.234567e+06 1.235M fra |http://wk:8470"
    assert expand("no template", labels={}, value=0.0) == "no template"


@pytest.mark.parametrize(("text", "message"), [
    ("{{", "line 1, column 1: unclosed action"),
    ("{{ end }}", "line 1, column 4: unexpected {{end}}"),
    ("ok\n{{ if 1 }}", "line 2, column 11: unexpected EOF"),
    ("{{ nofunc 1 }}", 'line 1, column 4: function "nofunc" not defined'),
    ("{{ $x }}", "line 1, column 4: undefined variable: $x"),
    ('{{ "abc }}', "line 1, column 4: unterminated quoted string"),
    ("{{ $labels.x | }}", "line 1, column 16: missing value for command"),
])
def test_parse_errors_name_line_and_column(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        Template(text)
    assert str(err.value) == message


def test_execution_errors_name_the_column() -> None:
    with pytest.raises(TemplateError) as err:
        run('{{ query "missing" | first }}', query=lambda q: [])
    assert str(err.value) == ("line 1, column 22: executing at <first>: error calling first: "
                              "first() called on vector with no elements")
    # Go refuses to compare an int constant with a float64 ($value is a float64): so do we
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        expand("{{ if gt $value 80 }}x{{ end }}", labels={}, value=90.0)
    assert expand("{{ if gt $value 80.0 }}x{{ end }}", labels={}, value=90.0) == "x"
