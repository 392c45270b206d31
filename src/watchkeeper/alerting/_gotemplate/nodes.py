"""The syntax tree of a parsed template: text, actions, branches, template calls, loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Action", "Branch", "Command", "Loop", "Node", "Pipe", "TemplateCall", "Text"]


@dataclass
class Text:
    text: str


@dataclass
class Node:
    """An operand: kind is const, dot, field, var, ident (function), pipe (parenthesised)."""

    kind: str
    value: Any
    pos: int
    fields: tuple[str, ...] = ()


@dataclass
class Command:
    args: list[Node]
    pos: int


@dataclass
class Pipe:
    decl: list[str]
    assign: bool  # ``=`` rather than ``:=``
    cmds: list[Command]
    pos: int


@dataclass
class Action:
    pipe: Pipe


@dataclass
class Branch:
    kind: str  # if, range, with
    pipe: Pipe
    body: list[Any]
    else_: list[Any] | None


@dataclass
class TemplateCall:
    name: str
    pipe: Pipe | None
    pos: int


@dataclass
class Loop:
    kind: str  # break / continue
    pos: int
