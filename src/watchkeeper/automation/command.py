"""Commands built from parts, never from f-strings.

Every value that goes into a shell command is quoted (``Quoted``); secrets are
``Masked``: they go to the host as they are but read ``***`` in logs, run
records and errors. ``Raw`` is for shell syntax the author of a runbook wrote
themselves (pipes, redirects), never for values.

    Command.of("systemctl", "restart", Quoted(service))          # argv, each quoted
    Command([Raw("journalctl -u "), Quoted(unit), Raw(" -n 50")])
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Command", "Masked", "Quoted", "Raw"]


@dataclass(frozen=True)
class Raw:
    """Shell text as written by a runbook's author (trusted)."""

    text: str


@dataclass(frozen=True)
class Quoted:
    """A value: always shell-quoted."""

    value: str


@dataclass(frozen=True)
class Masked:
    """A secret value: shell-quoted for the host, ``***`` everywhere else."""

    value: str

    def __repr__(self) -> str:
        return "Masked('***')"


Part = Raw | Quoted | Masked


@dataclass(frozen=True)
class Command:
    parts: tuple[Part, ...]

    def __init__(self, parts: Iterable[Part | str]) -> None:
        object.__setattr__(self, "parts", tuple(p if isinstance(p, (Raw, Quoted, Masked)) else Raw(p)
                                                for p in parts))

    @classmethod
    def of(cls, *argv: str | Part) -> Command:
        """An argv: every plain string is quoted, and parts are joined by spaces."""
        parts: list[Part] = []
        for i, a in enumerate(argv):
            if i:
                parts.append(Raw(" "))
            parts.append(Quoted(a) if isinstance(a, str) else a)
        return cls(parts)

    @classmethod
    def shell(cls, text: str) -> Command:
        """A whole command line written by a runbook's author."""
        return cls([Raw(text)])

    def render(self) -> str:
        """The text to send to the host's shell."""
        out = []
        for p in self.parts:
            if isinstance(p, Raw):
                out.append(p.text)
            else:
                out.append(shlex.quote(p.value))
        return "".join(out)

    def masked(self) -> str:
        """The text for logs and records: secrets read ``***``."""
        out = []
        for p in self.parts:
            if isinstance(p, Raw):
                out.append(p.text)
            elif isinstance(p, Masked):
                out.append("***")
            else:
                out.append(shlex.quote(p.value))
        return "".join(out)

    def secrets(self) -> list[str]:
        return [p.value for p in self.parts if isinstance(p, Masked)]

    def __str__(self) -> str:
        return self.masked()

    def __add__(self, other: Command) -> Command:
        return Command(self.parts + other.parts)
