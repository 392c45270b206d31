"""The exception tree of watchkeeper.

Every error a user can see is a :class:`WatchkeeperError`. The tree keeps
what the user caused apart from what the environment caused and from bugs::

    WatchkeeperError
    ├── UserError                     (exit 2, HTTP 400) the input is wrong; fix it
    │   ├── ConfigError               a config file is invalid (file:line: key: what is allowed)
    │   ├── InputError                a command-line argument or API body is invalid
    │   │   ├── QueryError            a query or series selector does not parse
    │   │   └── ParseError            text in a known format (perfdata, exposition) does not parse
    │   ├── NotFoundError             (HTTP 404) a named check, series or entry does not exist
    │   ├── AuthenticationError       (HTTP 401) the API token is missing, unknown, expired or revoked
    │   └── ForbiddenError            (HTTP 403) the token's identity lacks the role an action needs
    ├── EnvironmentError_             (exit 3, HTTP 503) something outside is not right
    │   ├── StorageError              the database cannot be opened, migrated or written
    │   ├── ServerUnreachableError    ``--server`` does not answer
    │   ├── ListenError               the HTTP address cannot be bound (in use, not ours)
    │   ├── CheckExecutionError       a check could not run at all (not: it ran and failed)
    │   └── HostUnreachableError      a managed host cannot be reached or logged in to
    │       └── HostKeyError          its SSH host key is unknown or changed (how to accept it)
    └── IntegrityError                (exit 1) the event log was edited or entries are missing

Each class carries its ``exit_code`` and ``http_status``; the CLI and the API
each have one handler that renders them.
"""

from __future__ import annotations

__all__ = [
    "WatchkeeperError",
    "UserError",
    "ConfigError",
    "ConfigIssue",
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
    "CheckExecutionError",
    "HostUnreachableError",
    "HostKeyError",
    "IntegrityError",
]

from dataclasses import dataclass


class WatchkeeperError(Exception):
    """Root of every error watchkeeper raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UserError(WatchkeeperError):
    """The input is wrong: the user can fix it."""

    exit_code = 2
    http_status = 400


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as we can."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(UserError):
    """One or more config files are invalid. ``issues`` lists each problem."""

    http_status = 422

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class InputError(UserError):
    """A command-line argument or an API request body is invalid."""


class QueryError(InputError):
    """A query expression or series selector does not parse or cannot be evaluated."""

    error_type = "bad_data"


class ParseError(InputError):
    """Text in a known format (perfdata, exposition, threshold) does not parse."""

    def __init__(self, message: str, *, line: int | None = None, text: str | None = None,
                 hint: str | None = None) -> None:
        self.line = line
        self.text = text
        if line is not None:
            message = f"line {line}: {message}"
        super().__init__(message, hint=hint)


class NotFoundError(UserError):
    """A named thing (check, series, entry) does not exist."""

    http_status = 404


class AuthenticationError(UserError):
    """The API token is missing, unknown, expired or revoked (who is asking is not known)."""

    http_status = 401


class ForbiddenError(UserError):
    """The identity is known but lacks the role the action needs (the message names both)."""

    http_status = 403


class EnvironmentError_(WatchkeeperError):
    """Something outside watchkeeper is not right: a database, a host, a server."""

    exit_code = 3
    http_status = 503


class StorageError(EnvironmentError_):
    """The database cannot be opened, migrated or written."""


class ServerUnreachableError(EnvironmentError_):
    """A running watchkeeper server given by ``--server`` does not answer."""


class ListenError(EnvironmentError_):
    """The HTTP server cannot listen on its address (in use, or not an address of this host)."""


class CheckExecutionError(EnvironmentError_):
    """A check could not be run at all (a missing plugin, a bad executable)."""


class HostUnreachableError(EnvironmentError_):
    """A managed host cannot be reached or logged in to (refused, timed out, auth failed)."""

    def __init__(self, host: str, message: str, *, hint: str | None = None) -> None:
        self.host = host
        super().__init__(message, hint=hint)


class HostKeyError(HostUnreachableError):
    """A host's SSH key is not in known_hosts (``kind="unknown"``) or differs (``"changed"``)."""

    def __init__(self, host: str, message: str, *, kind: str, hint: str | None = None) -> None:
        self.kind = kind
        super().__init__(host, message, hint=hint)


class IntegrityError(WatchkeeperError):
    """The event log's hash chain is broken: an entry was edited or deleted."""

    exit_code = 1
    http_status = 500
