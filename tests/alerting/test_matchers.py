"""Alertmanager's matcher syntax and semantics: both parsers (UTF-8 and classic fallback),
regex anchoring without dot-all, missing labels as empty strings, legacy match/match_re,
and the API's {name, value, isRegex, isEqual} objects."""

from __future__ import annotations

import pytest

from watchkeeper.alerting.matchers import (
    format_matchers,
    make_matcher,
    matcher_from_api,
    matcher_to_api,
    matchers_from_legacy,
    matches,
    parse_matcher,
    parse_matchers,
)
from watchkeeper.errors import InputError


def triples(text: str) -> list[tuple[str, str, str]]:
    return [(m.name, m.op, m.value) for m in parse_matchers(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ('{a="b",c=~"x.*"}', [("a", "=", "b"), ("c", "=~", "x.*")]),
    ('{foo = "bar", dings != "bums", }', [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ("foo=bar,dings!=bums", [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ("foo=bar, dings!~bu.*", [("foo", "=", "bar"), ("dings", "!~", "bu.*")]),
    ('statuscode=~"5.."', [("statuscode", "=~", "5..")]),
    ('{quote="She said: \\"Hi, ladies!\\""}', [("quote", "=", 'She said: "Hi, ladies!"')]),
    ('a="multi\\nline"', [("a", "=", "multi\nline")]),
    ('a="back\\\\slash"', [("a", "=", "back\\slash")]),
    ('a=""', [("a", "=", "")]),
    ("{}", []),
    ("", []),
    ('{"service name"="api"}', [("service name", "=", "api")]),
    ("instance=web1:9100", [("instance", "=", "web1:9100")]),
    ("job=node exporter", [("job", "=", "node exporter")]),  # classic: the rest, trimmed
    ("alertname=Disk full , severity=page", [("alertname", "=", "Disk full"),
                                             ("severity", "=", "page")]),
    ("a=b=c", [("a", "=", "b=c")]),
    ("{a=b}", [("a", "=", "b")]),
    ("a=~b|c", [("a", "=~", "b|c")]),
    ("a=ünïcode", [("a", "=", "ünïcode")]),
    ('{a="b"', [("a", "=", "b")]),  # the classic parser trims braces one by one
    ("1a=b", [("1a", "=", "b")]),  # UTF-8 label names (Alertmanager 0.27)
])
def test_parse_matchers_accepts_alertmanager_forms(text: str, expected: list[tuple[str, str, str]]
                                                   ) -> None:
    assert triples(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ('a="unterminated', "invalid matchers 'a=\"unterminated'"),
    ("=b", "invalid matchers '=b'"),
    ("a", "invalid matchers 'a'"),
    ('a=b"c', "invalid matchers"),
])
def test_parse_matchers_rejects_garbage(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_matchers(text)
    assert message in info.value.message
    assert info.value.hint is not None and "name=" in info.value.hint


def test_bad_regex_names_label() -> None:
    with pytest.raises(InputError, match="invalid regular expression '\\(' in matcher for label 'a'"):
        parse_matchers('a=~"("')


def test_parse_matcher_wants_exactly_one() -> None:
    assert parse_matcher("a=b").value == "b"
    with pytest.raises(InputError, match="expected one matcher in 'a=b,c=d', found 2"):
        parse_matcher("a=b,c=d")


@pytest.mark.parametrize(("op", "pattern", "value", "hit"), [
    ("=~", "web", "web", True),
    ("=~", "web", "web1", False),       # anchored at the end
    ("=~", "web", "aweb", False),       # and at the start
    ("=~", "web|db", "db", True),       # the alternation is grouped before anchoring
    ("=~", "a.c", "a\nc", False),       # no dot-all, as in Go without (?s)
    ("=~", "abc", "abc\n", False),      # $ does not match before a final newline
    ("=~", ".*", "", True),
    ("!~", "web.*", "web1", False),
    ("!~", "web.*", "db1", True),
    ("=", "x", "x", True),
    ("!=", "x", "y", True),
])
def test_matcher_semantics(op: str, pattern: str, value: str, hit: bool) -> None:
    assert make_matcher("l", op, pattern).matches(value) is hit


@pytest.mark.parametrize(("text", "labels", "hit"), [
    ('team=""', {"alertname": "A"}, True),            # a missing label is the empty string
    ('team=""', {"team": "ops"}, False),
    ('team!=""', {"alertname": "A"}, False),
    ('team!=""', {"team": "ops"}, True),
    ('team=~"ops|"', {}, True),
    ('team!~".+"', {}, True),
    ('team!="ops"', {}, True),
    ('alertname="A",team="ops"', {"alertname": "A", "team": "ops"}, True),
    ('alertname="A",team="ops"', {"alertname": "A", "team": "dev"}, False),
    ("{}", {"anything": "x"}, True),
])
def test_matches_treats_missing_labels_as_empty(text: str, labels: dict[str, str], hit: bool) -> None:
    assert matches(parse_matchers(text), labels) is hit


def test_legacy_match_and_match_re() -> None:
    ms = matchers_from_legacy({"severity": "critical", "alertname": "X"}, {"service": "foo|bar"})
    assert [(m.name, m.op, m.value) for m in ms] == [
        ("alertname", "=", "X"), ("severity", "=", "critical"), ("service", "=~", "foo|bar")]
    assert matches(ms, {"alertname": "X", "severity": "critical", "service": "bar"})
    assert not matches(ms, {"alertname": "X", "severity": "critical", "service": "foobar"})
    assert matchers_from_legacy(None, None) == []


@pytest.mark.parametrize(("obj", "op"), [
    ({"name": "a", "value": "b", "isRegex": False}, "="),  # isEqual defaults to true
    ({"name": "a", "value": "b", "isRegex": False, "isEqual": True}, "="),
    ({"name": "a", "value": "b", "isRegex": False, "isEqual": False}, "!="),
    ({"name": "a", "value": "b", "isRegex": True, "isEqual": True}, "=~"),
    ({"name": "a", "value": "b", "isRegex": True, "isEqual": False}, "!~"),
])
def test_api_matcher_objects_round_trip(obj: dict[str, object], op: str) -> None:
    m = matcher_from_api(obj)
    assert m.op == op
    assert matcher_from_api(matcher_to_api(m)) == m
    assert matcher_to_api(m)["isEqual"] is (op in ("=", "=~"))


@pytest.mark.parametrize(("obj", "message"), [
    ({"value": "b", "isRegex": False}, "matchers[0].name: must be a non-empty string"),
    ({"name": "a", "isRegex": False}, "matchers[0].value: must be a string"),
    ({"name": "a", "value": "b", "isRegex": "yes"}, "matchers[0].isRegex: must be true or false"),
    ({"name": "a", "value": "(", "isRegex": True}, "matchers[0].value: invalid regular expression"),
    ("a=b", "matchers[0]: must be an object"),
])
def test_api_matcher_errors_name_the_field(obj: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        matcher_from_api(obj, "matchers[0]")
    assert info.value.message.startswith(message)


def test_format_matchers_as_alertmanager_prints_them() -> None:
    text = '{alertname="Disk \\"full\\"",instance=~"web.*","service name"!="x\\ny"}'
    ms = parse_matchers(text)
    assert format_matchers(ms) == text
    assert parse_matchers(format_matchers(ms)) == ms
    assert format_matchers([]) == "{}"
