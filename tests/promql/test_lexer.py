"""The PromQL lexer: tokens, numbers, durations, strings and their errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.lexer import (
    PromQLSyntaxError,
    format_duration,
    parse_duration_ms,
    quote_string,
    tokenize,
)


def kinds(text: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(text)]


def test_tokens_of_a_rule_expression() -> None:
    text = 'sum by (mode) (rate(cpu{mode!="idle"}[5m])) > bool 0.5 # busy'
    assert kinds(text) == [
        ("IDENT", "sum"), ("IDENT", "by"), ("OP", "("), ("IDENT", "mode"), ("OP", ")"),
        ("OP", "("), ("IDENT", "rate"), ("OP", "("), ("IDENT", "cpu"), ("OP", "{"),
        ("IDENT", "mode"), ("OP", "!="), ("STRING", '"idle"'), ("OP", "}"), ("OP", "["),
        ("DURATION", "5m"), ("OP", "]"), ("OP", ")"), ("OP", ")"), ("OP", ">"),
        ("IDENT", "bool"), ("NUMBER", "0.5"), ("EOF", ""),
    ]
    assert [t.pos for t in tokenize(text)][:3] == [0, 4, 7]
    assert tokenize(text)[-1].pos == len(text)


@pytest.mark.parametrize("text,expected", [
    ("==", "=="), ("!=", "!="), ("=~", "=~"), ("!~", "!~"), ("<=", "<="), (">=", ">="),
    ("<", "<"), (">", ">"), ("=", "="), ("^", "^"), ("%", "%"), ("@", "@"),
])
def test_operators(text: str, expected: str) -> None:
    assert kinds(text) == [("OP", expected), ("EOF", "")]


def test_colon_is_part_of_names_outside_brackets_and_a_separator_inside() -> None:
    assert kinds("job:rate5m:sum[5m:1m]") == [
        ("IDENT", "job:rate5m:sum"), ("OP", "["), ("DURATION", "5m"), ("OP", ":"),
        ("DURATION", "1m"), ("OP", "]"), ("EOF", ""),
    ]
    assert kinds("x[5:]")[2:5] == [("NUMBER", "5"), ("OP", ":"), ("OP", "]")]


@pytest.mark.parametrize("text,value", [
    ("1", 1.0), ("1.5", 1.5), ("1e3", 1000.0), ("1E-3", 0.001), ("2.5e+2", 250.0),
    (".5", 0.5), ("5.", 5.0), ("0x1f", 31.0), ("0X1F", 31.0), ("010", 8.0), ("09", 9.0),
    ("0", 0.0), ("123456789012", 123456789012.0),
])
def test_numbers(text: str, value: float) -> None:
    (tok, _eof) = tokenize(text)
    assert tok.kind == "NUMBER" and tok.value == value


@pytest.mark.parametrize("text,ms", [
    ("500ms", 500), ("1s", 1000), ("5m", 300_000), ("1h", 3_600_000), ("1h30m", 5_400_000),
    ("1d", 86_400_000), ("1w", 604_800_000), ("1y", 31_536_000_000), ("1w2d", 777_600_000),
    ("1m30s500ms", 90_500), ("0s", 0),
])
def test_durations(text: str, ms: int) -> None:
    (tok, _eof) = tokenize(text)
    assert (tok.kind, tok.value) == ("DURATION", ms)
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text,message", [
    ("30m1h", 'not a valid duration string: "30m1h" at column 1'),
    ("5m5m", 'not a valid duration string: "5m5m" at column 1'),
    ("x[ 1d2w]", 'not a valid duration string: "1d2w" at column 4'),
    ("5mx", 'bad number or duration syntax: "5mx" at column 1'),
    ("1.5m", 'bad number or duration syntax: "1.5m" at column 1'),
    ("0x", 'bad number or duration syntax: "0x" at column 1'),
    ("1 + 2abc", 'bad number or duration syntax: "2abc" at column 5'),
])
def test_bad_numbers_and_durations(text: str, message: str) -> None:
    with pytest.raises(PromQLSyntaxError) as err:
        tokenize(text)
    assert str(err.value) == message


@pytest.mark.parametrize("text,value", [
    ('"plain"', "plain"),
    ("'single'", "single"),
    ("`raw \\n \"q\"`", 'raw \\n "q"'),
    ("`two\nlines`", "two\nlines"),
    (r'"\a\b\f\n\r\t\v\\"', "\a\b\f\n\r\t\v\\"),
    (r'"say \"hi\""', 'say "hi"'),
    (r"'it\'s'", "it's"),
    (r'"\x41\101\u00e9\U0001F600"', "AAé\U0001F600"),
    (r'"\xc3\xa9"', "é"),  # byte escapes are UTF-8
    ('"é ünïcode"', "é ünïcode"),
    ('""', ""),
])
def test_strings(text: str, value: str) -> None:
    (tok, _eof) = tokenize(text)
    assert (tok.kind, tok.value, tok.text) == ("STRING", value, text)


@pytest.mark.parametrize("text,message", [
    ('"open', "unterminated quoted string at column 1"),
    ("x{a='open}", "unterminated quoted string at column 5"),
    ('"line\nbreak"', "unterminated quoted string at column 1"),
    ("`raw", "unterminated raw string at column 1"),
    (r'"bad \q"', r"unknown escape sequence '\q' in string at column 6"),
    (r'"\'"', r"unknown escape sequence '\'' in string at column 2"),
    (r'"\u12"', r"""invalid escape sequence '\u12"' in string at column 2"""),
    (r'"\ud800"', r"invalid escape sequence '\ud800' in string at column 2"),
    (r'"\400"', r"invalid escape sequence '\400' in string at column 2"),
    ("x $ y", "unexpected character '$' at column 3"),
    ("x ! y", "unexpected character after '!' at column 3"),
])
def test_string_and_character_errors(text: str, message: str) -> None:
    with pytest.raises(PromQLSyntaxError) as err:
        tokenize(text)
    assert str(err.value) == message


def test_comments_and_whitespace_are_skipped() -> None:
    assert kinds("# only a comment") == [("EOF", "")]
    assert kinds("a # one\n\t+ # two\r\n b") == [
        ("IDENT", "a"), ("OP", "+"), ("IDENT", "b"), ("EOF", ""),
    ]
    assert kinds('"# not a comment"') == [("STRING", '"# not a comment"'), ("EOF", "")]


def test_error_is_a_query_error_with_position_line_and_column() -> None:
    with pytest.raises(QueryError) as err:
        tokenize("up\n  and $")
    exc = err.value
    assert isinstance(exc, PromQLSyntaxError)
    assert (exc.position, exc.line, exc.column) == (9, 2, 7)
    assert exc.detail == "unexpected character '$'"
    assert str(exc) == "unexpected character '$' at line 2, column 7"


@pytest.mark.parametrize("seconds,text", [
    (300, "5m"), (5400, "1h30m"), (90, "1m30s"), (0.5, "500ms"), (1.5, "1s500ms"),
    (86400, "1d"), (7 * 86400, "1w"), (9 * 86400, "9d"), (14 * 86400, "2w"),
    (90 * 86400, "90d"), (365 * 86400, "1y"), (366 * 86400, "366d"), (0, "0s"),
    (-300, "-5m"), (0.0005, "0.0005"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=10**13))
def test_format_duration_reads_back(ms: int) -> None:
    assert parse_duration_ms(format_duration(ms / 1000)) == ms


@pytest.mark.parametrize("value,quoted", [
    ("plain", '"plain"'), ('a"b', r'"a\"b"'), ("back\\slash", r'"back\\slash"'),
    ("tab\tnl\n", r'"tab\tnl\n"'), ("\x00\x7f", r'"\x00\x7f"'), ("é", '"é"'),
    ("\u2028", r'"\u2028"'), ("\U000e0001", r'"\U000e0001"'),
])
def test_quote_string(value: str, quoted: str) -> None:
    assert quote_string(value) == quoted


@given(st.text())
def test_quoted_strings_read_back(value: str) -> None:
    (tok, _eof) = tokenize(quote_string(value))
    assert tok.value == value


def test_inf_and_nan_are_identifiers_to_the_lexer() -> None:
    # the parser decides: a number where an operand stands, a label name inside braces
    assert kinds("Inf NaN") == [("IDENT", "Inf"), ("IDENT", "NaN"), ("EOF", "")]
    assert math.isnan(float("nan"))
