"""The one error of the template engine: it does not parse, or fails while it runs."""

from __future__ import annotations

from watchkeeper.errors import InputError

__all__ = ["TemplateError"]


class TemplateError(InputError):
    """A template does not parse, or fails while it runs. ``line``/``column`` are 1-based."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f"line {line}, column {column}: " if column is not None else f"line {line}: "
        self.detail = message
        super().__init__(where + message)
