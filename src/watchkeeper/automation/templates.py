"""Sandboxed Jinja2 for runbooks: commands whose every substituted value is shell-quoted.

Runbook text is written by a trusted author; parameter values, alert labels and
registered outputs are not. So in a ``run:`` command every ``{{ ... }}`` becomes
a :class:`~watchkeeper.automation.command.Quoted` part (or ``Masked`` for a
secret) of a :class:`~watchkeeper.automation.command.Command`, and only the text
the author wrote between the braces stays raw shell. A parameter value
``x; touch /tmp/pwned`` therefore reaches the shell as the single word
``'x; touch /tmp/pwned'``. Don't put quotes around ``{{ }}`` yourself: the value
would then carry the quote characters.

Templates run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`jinja2.StrictUndefined`: no attribute access to Python internals, no
mutation of the context, and a misspelt name is an error rather than an empty
string.

Errors: :class:`TemplateError` (an :class:`~watchkeeper.errors.InputError`)
naming what failed to render and why.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, pass_eval_context
from jinja2 import TemplateError as _JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from watchkeeper.automation.command import Command, Masked, Quoted, Raw
from watchkeeper.errors import InputError

__all__ = ["SecretValue", "TemplateError", "check_syntax", "evaluate", "render_command",
           "render_text", "masked_text"]


class TemplateError(InputError):
    """A runbook template does not parse or cannot be rendered (an undefined name, a bad filter)."""


class SecretValue:
    """A value that goes to the host but reads ``***`` in records and logs."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "SecretValue('***')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


_TOKEN_RE = re.compile("\x00(\\d+)\x00")
_parts: contextvars.ContextVar[list[Quoted | Masked] | None] = contextvars.ContextVar(
    "watchkeeper_template_parts", default=None)


def _text(value: Any) -> str:
    if isinstance(value, SecretValue):
        return value.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resolve_tokens(text: str, parts: list[Quoted | Masked]) -> tuple[str, bool]:
    """Replace tokens inside a value by the values they stand for (for nested macro output)."""
    secret = False

    def repl(m: re.Match[str]) -> str:
        nonlocal secret
        part = parts[int(m.group(1))]
        secret = secret or isinstance(part, Masked)
        return part.value

    return _TOKEN_RE.sub(repl, text), secret


@pass_eval_context
def _command_finalize(_ctx: Any, value: Any) -> str:
    # pass_eval_context keeps Jinja from folding constant output at compile time,
    # so every substitution goes through here at render time.
    parts = _parts.get()
    if parts is None:  # rendered outside render_command (not expected): quote anyway
        import shlex
        return shlex.quote(_text(value))
    secret = isinstance(value, SecretValue)
    text = _text(value)
    if "\x00" in text:
        text, nested_secret = _resolve_tokens(text, parts)
        secret = secret or nested_secret
    parts.append(Masked(text) if secret else Quoted(text))
    return f"\x00{len(parts) - 1}\x00"


@pass_eval_context
def _text_finalize(_ctx: Any, value: Any) -> str:
    return _text(value)


def _make_env(finalize: Any) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, finalize=finalize,
                                        autoescape=False, keep_trailing_newline=True)
    env.filters["quote"] = lambda v: __import__("shlex").quote(_text(v))
    return env


_COMMAND_ENV = _make_env(_command_finalize)
_TEXT_ENV = _make_env(_text_finalize)


def _describe(exc: Exception) -> str:
    line = getattr(exc, "lineno", None)
    msg = getattr(exc, "message", None) or str(exc)
    return f"line {line} of the template: {msg}" if line and line > 1 else msg


def check_syntax(source: str) -> str | None:
    """None if ``source`` parses as a template, else the reason it does not."""
    try:
        _TEXT_ENV.parse(source)
    except _JinjaTemplateError as exc:
        return _describe(exc)
    return None


def render_command(source: str, context: Mapping[str, Any], *, what: str = "command") -> Command:
    """Render a ``run:`` command: author text stays raw, every substitution becomes Quoted/Masked.

    Raises TemplateError naming ``what`` when the template does not parse or render.
    """
    if "\x00" in source:
        raise TemplateError(f"{what}: NUL characters are not allowed in commands")
    parts: list[Quoted | Masked] = []
    token = _parts.set(parts)
    try:
        rendered = _COMMAND_ENV.from_string(source).render(**context)
    except _JinjaTemplateError as exc:
        raise TemplateError(f"{what}: {_describe(exc)}") from None
    finally:
        _parts.reset(token)
    out: list[Raw | Quoted | Masked] = []
    pieces = _TOKEN_RE.split(rendered)
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            if piece:
                out.append(Raw(piece))
        else:
            out.append(parts[int(piece)])
    return Command(out)


def render_text(source: str, context: Mapping[str, Any], *, what: str = "template") -> str:
    """Render plain text (a copied template, a URL, a path): values as they are, not quoted.

    Raises TemplateError naming ``what``.
    """
    try:
        return _TEXT_ENV.from_string(source).render(**context)
    except _JinjaTemplateError as exc:
        raise TemplateError(f"{what}: {_describe(exc)}") from None


def evaluate(expression: str, context: Mapping[str, Any], *, what: str = "expression") -> Any:
    """Evaluate a bare Jinja expression (``when:``, ``changed_when:``), e.g. ``params.force or x.rc == 1``.

    Raises TemplateError naming ``what``.
    """
    try:
        compiled = _TEXT_ENV.compile_expression(expression, undefined_to_none=False)
        value = compiled(**context)
    except _JinjaTemplateError as exc:
        raise TemplateError(f"{what}: {_describe(exc)}") from None
    if isinstance(value, StrictUndefined):
        raise TemplateError(f"{what}: {expression!r} is undefined")
    return value


def check_expression(expression: str) -> str | None:
    """None if ``expression`` parses as a Jinja expression, else the reason."""
    try:
        _TEXT_ENV.compile_expression(expression)
    except _JinjaTemplateError as exc:
        return _describe(exc)
    return None


def masked_text(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (for diffs and records)."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, "***")
    return text
