"""The exception tree: exit codes and HTTP statuses per class, messages, and the export guard."""

from __future__ import annotations

import inspect

import pytest

import watchkeeper.errors as errors_module
from watchkeeper.errors import (
    AuthenticationError,
    CheckExecutionError,
    ConfigError,
    ConfigIssue,
    EnvironmentError_,
    ForbiddenError,
    HostKeyError,
    HostUnreachableError,
    InputError,
    IntegrityError,
    ListenError,
    NotFoundError,
    ParseError,
    QueryError,
    ServerUnreachableError,
    StorageError,
    UserError,
    WatchkeeperError,
)


@pytest.mark.parametrize(
    ("cls", "parent", "exit_code", "http_status"),
    [
        (WatchkeeperError, Exception, 1, 500),
        (UserError, WatchkeeperError, 2, 400),
        (ConfigError, UserError, 2, 422),
        (InputError, UserError, 2, 400),
        (QueryError, InputError, 2, 400),
        (ParseError, InputError, 2, 400),
        (NotFoundError, UserError, 2, 404),
        (AuthenticationError, UserError, 2, 401),
        (ForbiddenError, UserError, 2, 403),
        (EnvironmentError_, WatchkeeperError, 3, 503),
        (StorageError, EnvironmentError_, 3, 503),
        (ServerUnreachableError, EnvironmentError_, 3, 503),
        (ListenError, EnvironmentError_, 3, 503),
        (HostUnreachableError, EnvironmentError_, 3, 503),
        (HostKeyError, HostUnreachableError, 3, 503),
        (CheckExecutionError, EnvironmentError_, 3, 503),
        (IntegrityError, WatchkeeperError, 1, 500),
    ],
)
def test_exit_code_and_http_status_belong_to_the_class(
    cls: type[WatchkeeperError], parent: type, exit_code: int, http_status: int
) -> None:
    assert cls.__bases__ == (parent,)
    assert (cls.exit_code, cls.http_status) == (exit_code, http_status)


def test_every_class_in_the_tree_is_covered_above() -> None:
    """Adding an error class means deciding its exit code and status in the table above."""
    classes = {
        obj
        for _, obj in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(obj, WatchkeeperError)
    }
    assert {c.__name__ for c in classes} == {
        "WatchkeeperError",
        "UserError",
        "ConfigError",
        "InputError",
        "QueryError",
        "ParseError",
        "NotFoundError",
        "AuthenticationError",
        "ForbiddenError",
        "EnvironmentError_",
        "StorageError",
        "ServerUnreachableError",
        "ListenError",
        "HostUnreachableError",
        "HostKeyError",
        "CheckExecutionError",
        "IntegrityError",
    }


def test_all_lists_exactly_the_public_names() -> None:
    for name in errors_module.__all__:
        assert hasattr(errors_module, name), name
    assert len(set(errors_module.__all__)) == len(errors_module.__all__)
    defined_here = {
        name
        for name, obj in vars(errors_module).items()
        if inspect.isclass(obj) and obj.__module__ == errors_module.__name__
    }
    assert defined_here == set(errors_module.__all__)
    subclasses = {
        name for name in defined_here if issubclass(getattr(errors_module, name), WatchkeeperError)
    }
    assert subclasses <= set(errors_module.__all__)


def test_the_module_docstring_draws_every_class() -> None:
    doc = errors_module.__doc__ or ""
    for name in errors_module.__all__:
        if name != "ConfigIssue":
            assert name in doc, name


def test_message_and_hint() -> None:
    err = StorageError(
        "cannot open /x/watchkeeper.db", hint="pass --data-dir with a writable directory"
    )
    assert err.message == "cannot open /x/watchkeeper.db"
    assert err.hint == "pass --data-dir with a writable directory"
    assert str(err) == (
        "cannot open /x/watchkeeper.db\n  hint: pass --data-dir with a writable directory"
    )
    assert str(InputError("bad --limit")) == "bad --limit"
    assert InputError("bad").hint is None


def test_parse_error_names_the_line() -> None:
    err = ParseError("bad value 'x'", line=3, text="up x")
    assert str(err) == "line 3: bad value 'x'"
    assert (err.line, err.text) == (3, "up x")
    assert str(ParseError("empty")) == "empty"
    assert ParseError("empty").line is None


def test_query_error_has_the_prometheus_error_type() -> None:
    assert QueryError("bad").error_type == "bad_data"


@pytest.mark.parametrize(
    ("issue", "text"),
    [
        (
            ConfigIssue("watchkeeper.yaml", 14, "checks[2].interval", '"0s" must be at least 1s'),
            'watchkeeper.yaml:14: checks[2].interval: "0s" must be at least 1s',
        ),
        (
            ConfigIssue("conf.d/web.yaml", 3, "", "invalid YAML: found character '\\t'"),
            "conf.d/web.yaml:3: invalid YAML: found character '\\t'",
        ),
        (ConfigIssue("missing.yaml", None, "", "file not found"), "missing.yaml: file not found"),
        (ConfigIssue("w.yaml", None, "server.listen", "bad"), "w.yaml: server.listen: bad"),
    ],
)
def test_config_issue_formatting(issue: ConfigIssue, text: str) -> None:
    assert str(issue) == text


def test_config_error_lists_every_issue() -> None:
    issues = [
        ConfigIssue("a.yaml", 1, "server", "bad"),
        ConfigIssue("b.yaml", 2, "checks[0]", "worse"),
    ]
    err = ConfigError(issues)
    assert err.issues == issues
    assert str(err) == "a.yaml:1: server: bad\nb.yaml:2: checks[0]: worse"
    assert err.exit_code == 2


def test_config_issue_is_immutable_and_comparable() -> None:
    a = ConfigIssue("w.yaml", 1, "x", "y")
    assert a == ConfigIssue("w.yaml", 1, "x", "y")
    with pytest.raises(AttributeError):
        a.line = 2  # type: ignore[misc]
