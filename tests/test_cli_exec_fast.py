"""``watchkeeper exec`` parses its plain form without typer (start-up speed) and hands
everything else to typer, which words the errors."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.cli._exec import parse_fast

BASE: dict[str, Any] = {"inventory": None, "forks": None, "json_": False, "known_hosts": None,
                        "timeout": None, "config": None, "server": None}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["web", "--", "uptime"], {"pattern": "web", "command": ["uptime"]}),
        (["-i", "inv.ini", "web:&prod", "--forks", "10", "--json", "--", "echo", "a b"],
         {"pattern": "web:&prod", "command": ["echo", "a b"], "inventory": ["inv.ini"],
          "forks": 10, "json_": True}),
        (["all", "--timeout=30s", "--known-hosts", "kh", "--", "true"],
         {"pattern": "all", "command": ["true"], "timeout": "30s", "known_hosts": "kh"}),
        (["-i", "a", "-i", "b", "all", "--", "true"],
         {"pattern": "all", "command": ["true"], "inventory": ["a", "b"]}),
    ],
)
def test_plain_forms_take_the_fast_path(args: list[str], expected: dict[str, Any]) -> None:
    got = parse_fast(args, environ={})
    assert got is not None
    want = {**BASE, **expected}
    assert {k: got.get(k) for k in want} == want


@pytest.mark.parametrize(
    "args",
    [
        ["web", "uptime"],                     # no "--": typer explains
        ["web", "--"],                         # no command
        ["--help", "web", "--", "true"],
        ["web", "--bogus", "--", "true"],      # unknown option
        ["web", "--forks", "many", "--", "true"],
        ["web", "--forks", "1", "--forks", "2", "--", "true"],
        ["web", "db", "--", "true"],           # two patterns
    ],
)
def test_anything_else_falls_back_to_typer(args: list[str]) -> None:
    assert parse_fast(args, environ={}) is None


def test_environment_defaults_are_honoured() -> None:
    got = parse_fast(["web", "--", "true"], environ={"WATCHKEEPER_SERVER": "http://127.0.0.1:8470",
                                                     "WATCHKEEPER_CONFIG": "w.yaml"})
    assert got is not None
    assert (got["server"], got["config"]) == ("http://127.0.0.1:8470", "w.yaml")
