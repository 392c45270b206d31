"""Entry point: the one handler that turns errors into messages and exit codes.

The typer app lives in ``cli/app.py`` and is imported only when it is needed
(``from watchkeeper.cli.main import app`` still works). Plain ``watchkeeper exec``
invocations skip it: typer's start-up (the command tree, a pydantic adapter per
parameter) costs more than parsing them, and ``exec`` is timed cold against Ansible.
"""

from __future__ import annotations

import sys

# no typing import at run time (~6 ms): annotations are strings, and type checkers treat
# any name TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from watchkeeper.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fast_path(argv: list[str]) -> int | None:
    """The exit status of a plain ``exec`` run without typer, or None to let typer parse."""
    if not argv or argv[0] != "exec":
        return None
    import gc

    # No cyclic garbage collection while the modules load: nearly every object made then
    # lives until exit, so collecting only costs time. run_exec freezes them and turns
    # the collector back on before the fan-out; on any other way out it is back on too.
    gc.disable()
    try:
        from watchkeeper.cli._exec import parse_fast, run_exec

        kwargs = parse_fast(argv[1:])
        if kwargs is None:
            return None
        try:
            return run_exec(**kwargs)
        except (EOFError, KeyboardInterrupt):
            # as click's standalone mode reports an interrupted command
            sys.stderr.write("\nAborted!\n")
            return 1
    finally:
        gc.enable()


def main() -> None:
    try:
        code = _fast_path(sys.argv[1:])
        if code is not None:
            sys.exit(code)
        from watchkeeper.cli.app import app

        # Standalone mode: typer prints usage errors (exit 2) and turns typer.Exit(n) into
        # exit status n. (With standalone_mode=False it *returns* n, which was discarded.)
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # errors.py is imported only when something failed: a successful fast path
        # (``exec --server``) never pays for it
        from watchkeeper.errors import WatchkeeperError

        if not isinstance(exc, WatchkeeperError):
            raise
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
