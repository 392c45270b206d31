"""A query's deadline, checked while it evaluates.

A query past its timeout stops where it is, instead of its thread running to the
end after the caller has given up: the evaluator checks at every node, and the
few loops that can run long check between rounds. The deadline lives in a context
variable, so concurrent queries in other threads each have their own
(``asyncio.to_thread`` carries the caller's context into the thread).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from watchkeeper.errors import QueryError

_DEADLINE: ContextVar[float | None] = ContextVar("watchkeeper_query_deadline", default=None)


def timeout_error() -> QueryError:
    """The error of a query past its deadline: Prometheus's 503 ``timeout``."""
    err = QueryError("query timed out in expression evaluation")
    err.error_type = "timeout"
    err.http_status = 503
    return err


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Evaluations in this context stop with :func:`timeout_error` after ``seconds``
    (None: no limit of its own; an enclosing, earlier deadline still holds)."""
    if seconds is None:
        yield
        return
    at = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(at if outer is None else min(at, outer))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check() -> None:
    """Raise :func:`timeout_error` when this context's deadline has passed."""
    at = _DEADLINE.get()
    if at is not None and time.monotonic() > at:
        raise timeout_error()
