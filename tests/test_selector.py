"""Series selectors: parsing, matching, the errors (with columns) and the text form."""

from __future__ import annotations

import pytest

from watchkeeper.errors import QueryError
from watchkeeper.query.selector import Matcher, matches_all, parse_selector


def triples(text: str) -> list[tuple[str, str, str]]:
    return [(m.name, m.op, m.value) for m in parse_selector(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("up", [("__name__", "=", "up")]),
        ("node_cpu_seconds_total", [("__name__", "=", "node_cpu_seconds_total")]),
        ("job:rate5m:sum", [("__name__", "=", "job:rate5m:sum")]),
        ('up{job="node"}', [("__name__", "=", "up"), ("job", "=", "node")]),
        ('{__name__="up"}', [("__name__", "=", "up")]),
        ('{job="node"}', [("job", "=", "node")]),
        ('up{job!="node"}', [("__name__", "=", "up"), ("job", "!=", "node")]),
        ('up{job=~"no.*"}', [("__name__", "=", "up"), ("job", "=~", "no.*")]),
        ('up{job!~"no.*"}', [("__name__", "=", "up"), ("job", "!~", "no.*")]),
        (
            'up{a="1", b!="2", c=~"3", d!~"4"}',
            [
                ("__name__", "=", "up"),
                ("a", "=", "1"),
                ("b", "!=", "2"),
                ("c", "=~", "3"),
                ("d", "!~", "4"),
            ],
        ),
        ('up{a="1",}', [("__name__", "=", "up"), ("a", "=", "1")]),
        ("up{}", [("__name__", "=", "up")]),
        (
            '  up { a = "1" , b = "2" }  ',
            [("__name__", "=", "up"), ("a", "=", "1"), ("b", "=", "2")],
        ),
        ("up{a='single'}", [("__name__", "=", "up"), ("a", "=", "single")]),
        ("up{a=`raw\\n`}", [("__name__", "=", "up"), ("a", "=", "raw\\n")]),
        ('up{a="q\\"uote"}', [("__name__", "=", "up"), ("a", "=", 'q"uote')]),
        ('up{a="back\\\\slash"}', [("__name__", "=", "up"), ("a", "=", "back\\slash")]),
        ('up{a="line\\nbreak\\ttab"}', [("__name__", "=", "up"), ("a", "=", "line\nbreak\ttab")]),
        ("up{a='it\\'s'}", [("__name__", "=", "up"), ("a", "=", "it's")]),
        ('up{a="\\d+"}', [("__name__", "=", "up"), ("a", "=", "\\d+")]),  # unknown escapes stay
        ('{a!=""}', [("a", "!=", "")]),
        ('{a=~".+"}', [("a", "=~", ".+")]),
        ('{a!~""}', [("a", "!~", "")]),
        # Prometheus 3: quoted metric and label names
        ('{"metric.name"}', [("__name__", "=", "metric.name")]),
        ('{"metric.name", job="x"}', [("__name__", "=", "metric.name"), ("job", "=", "x")]),
        ('{job="x", "metric.name",}', [("job", "=", "x"), ("__name__", "=", "metric.name")]),
        ('{"label.with.dots"="1", "m"}', [("label.with.dots", "=", "1"), ("__name__", "=", "m")]),
        ('up{"a.b"=~"x.*"}', [("__name__", "=", "up"), ("a.b", "=~", "x.*")]),
    ],
)
def test_parse_selector(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert triples(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a series selector"),
        ("   ", "'   ' is not a series selector"),
        ("{}", "'{}' is not a series selector"),
        ("up x", "unexpected 'x' at column 4 in selector 'up x'"),
        ('up{a="b"} x', "unexpected 'x' at column 11 in selector 'up{a=\"b\"} x'"),
        ("1up", "unexpected '1' at column 1 in selector '1up'"),
        ("up{", "expected a label name or '}' at column 4 in selector 'up{', found end of input"),
        (
            '{1a="b"}',
            "expected a label name or '}' at column 2 in selector '{1a=\"b\"}', found '1'",
        ),
        ("up{a}", "expected one of =, !=, =~, !~ at column 5 in selector 'up{a}'"),
        ('up{a<"b"}', "expected one of =, !=, =~, !~ at column 5 in selector 'up{a<\"b\"}'"),
        ("up{a=", "unexpected end of input at column 6 in selector 'up{a='"),
        ("up{a=b}", "expected a quoted string at column 6 in selector 'up{a=b}'"),
        ('up{a=="b"}', "expected a quoted string at column 6 in selector 'up{a==\"b\"}'"),
        ('up{a="b', "unterminated string starting at column 6 in selector 'up{a=\"b'"),
        ('up{a="b\\"}', "unterminated string starting at column 6 in selector 'up{a=\"b\\\\\"}'"),
        (
            'up{a="b"',
            "expected ',' or '}' at column 9 in selector 'up{a=\"b\"', found end of input",
        ),
        (
            'up{a="b" c="d"}',
            "expected ',' or '}' at column 10 in selector 'up{a=\"b\" c=\"d\"}', found 'c'",
        ),
        ('up{"m"}', "metric name given twice at column 4 in selector 'up{\"m\"}'"),
        ('{"a", "b"}', "metric name given twice at column 7 in selector '{\"a\", \"b\"}'"),
        ('{"m" "n"}', "expected one of =, !=, =~, !~ at column 6 in selector '{\"m\" \"n\"}'"),
        # columns count in the text as given, leading blanks included
        ("  up{a=b}", "expected a quoted string at column 8 in selector '  up{a=b}'"),
        (
            'up{a=~"("}',
            (
                "invalid regular expression '(' for label a: missing ), unterminated subpattern at "
                "position 0"
            ),
        ),
    ],
)
def test_parse_selector_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_selector(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "text",
    ['{a=""}', '{a=~".*"}', '{a=~""}', '{a!~"x"}', '{a!="x"}', '{a=~".*", b=""}', '{a=~"x|"}'],
)
def test_selectors_that_match_everything_are_refused(text: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_selector(text)
    assert str(info.value) == (
        f"selector {text!r} must contain at least one matcher that does not match the empty string"
    )


def test_a_name_makes_any_selector_restrictive() -> None:
    assert triples('up{a=~".*"}') == [("__name__", "=", "up"), ("a", "=~", ".*")]


@pytest.mark.parametrize(
    ("op", "value", "matching", "not_matching"),
    [
        ("=", "web", ["web"], ["web1", "", "Web"]),
        ("!=", "web", ["web1", "", "Web"], ["web"]),
        ("=~", "web|db", ["web", "db"], ["web1", "xweb", "webdb", ""]),
        ("=~", "web.*", ["web", "web1"], ["xweb", ""]),
        ("=~", ".*", ["", "anything", "multi\nline"], []),
        ("!~", "web|db", ["web1", "", "xdb"], ["web", "db"]),
        ("=~", "a.b", ["axb", "a\nb"], ["ab"]),  # . matches a newline, as in Prometheus (RE2 s)
    ],
)
def test_matcher_semantics_and_anchoring(
    op: str, value: str, matching: list[str], not_matching: list[str]
) -> None:
    m = Matcher.make("host", op, value)
    assert [m.matches(v) for v in matching] == [True] * len(matching)
    assert [m.matches(v) for v in not_matching] == [False] * len(not_matching)


def test_make_refuses_unknown_operator_and_bad_regex() -> None:
    with pytest.raises(QueryError) as info:
        Matcher.make("a", "==", "b")
    assert str(info.value) == "unknown matcher operator '=='; use one of =, !=, =~, !~"
    with pytest.raises(QueryError) as info:
        Matcher.make("a", "!~", "[")
    assert str(info.value).startswith("invalid regular expression '[' for label a: ")


def test_matches_all_treats_a_missing_label_as_empty() -> None:
    ms = parse_selector('up{job="node", instance!="", zone=~"|eu"}')
    assert matches_all(ms, {"__name__": "up", "job": "node", "instance": "h:9100"})
    assert matches_all(ms, {"__name__": "up", "job": "node", "instance": "h:9100", "zone": "eu"})
    assert not matches_all(ms, {"__name__": "up", "job": "node"})  # instance missing
    assert not matches_all(ms, {"__name__": "down", "job": "node", "instance": "h"})
    assert not matches_all(ms, {"__name__": "up", "job": "node", "instance": "h", "zone": "us"})
    assert matches_all([], {})


@pytest.mark.parametrize(
    ("name", "op", "value", "text"),
    [
        ("job", "=", "node", 'job="node"'),
        ("job", "!=", "", 'job!=""'),
        ("job", "=~", "a|b.*", 'job=~"a|b.*"'),
        ("job", "!~", "x", 'job!~"x"'),
        ("path", "=", 'C:\\dir "quoted"', 'path="C:\\\\dir \\"quoted\\""'),
        ("msg", "=", "two\nlines", 'msg="two\\nlines"'),
        ("tab", "=", "a\tb", 'tab="a\tb"'),
    ],
)
def test_matcher_str_round_trips(name: str, op: str, value: str, text: str) -> None:
    m = Matcher.make(name, op, value)
    assert str(m) == text
    again = parse_selector("{" + str(m) + ', __name__="x"}')[0]
    assert (again.name, again.op, again.value) == (name, op, value)
    assert again == m


def test_whole_selector_round_trips() -> None:
    text = 'http_requests_total{code=~"5..", path!="/healthz", method="GET"}'
    ms = parse_selector(text)
    rebuilt = "{" + ", ".join(str(m) for m in ms) + "}"
    assert rebuilt == (
        '{__name__="http_requests_total", code=~"5..", path!="/healthz", method="GET"}'
    )
    assert parse_selector(rebuilt) == ms


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("(?i)web", "WEB-1", False),
        ("(?i)web.*", "WEB-1", True),
        ("[[:alpha:]]+", "abc", True),
        ("[[:digit:]]+", "12a", False),
        ("[^[:space:]]+", "a b", False),
        ("a|b", "ab", False),
        ("x\\z", "x", True),
    ],
)
def test_regexes_follow_re2_as_prometheus_reads_them(pattern: str, value: str, expected: bool) -> None:
    assert Matcher.make("job", "=~", pattern).matches(value) is expected

