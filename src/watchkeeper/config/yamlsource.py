"""Read YAML while remembering where each value came from (file and line).

The loader turns YAML nodes into plain Python values and records, for each
key path such as ``("checks", 2, "interval")``, the file and line it was
written on, so that validation errors can point at it. ``${VAR}`` and
``${VAR:-default}`` in string values are replaced from the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.errors import ConfigIssue

__all__ = ["Located", "read_yaml", "Path_"]

Path_ = tuple[str | int, ...]
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")


class Located:
    """Plain data plus a map from key path to (file, line)."""

    def __init__(self, data: Any, lines: dict[Path_, tuple[str, int]]) -> None:
        self.data = data
        self.lines = lines

    def where(self, path: Path_) -> tuple[str, int | None]:
        """The file and line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), ("<config>", None))


def _substitute(text: str, file: str, line: int, issues: list[ConfigIssue], path: str,
                environ: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        value = environ.get(name)
        if default is not None:
            # as in sh and compose: ``:-`` also replaces a variable that is set but empty
            return value if value else default
        if value is not None:
            return value
        issues.append(ConfigIssue(file, line, path,
                                  f"environment variable {name} is not set "
                                  f"(set it, or give a default as ${{{name}:-value}})"))
        return ""

    return _ENV_RE.sub(repl, text)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _convert(node: yaml.Node, file: str, path: Path_, lines: dict[Path_, tuple[str, int]],
             issues: list[ConfigIssue], environ: Mapping[str, str] | None) -> Any:
    line = node.start_mark.line + 1
    lines.setdefault(path, (file, line))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                issues.append(ConfigIssue(file, key_node.start_mark.line + 1, format_path(path),
                                          "YAML merge keys (<<) are not supported; repeat the keys"))
                continue
            key = yaml.SafeLoader.construct_scalar(_LOADER, key_node) if isinstance(
                key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                issues.append(ConfigIssue(file, key_node.start_mark.line + 1, format_path(path),
                                          "keys must be plain strings"))
                continue
            if key in out:
                issues.append(ConfigIssue(file, key_node.start_mark.line + 1,
                                          format_path(path + (key,)),
                                          f"duplicate key {key!r} (first given on line "
                                          f"{lines[path + (key,)][1]})"))
                continue
            lines[path + (key,)] = (file, key_node.start_mark.line + 1)
            out[key] = _convert(value_node, file, path + (key,), lines, issues, environ)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, file, path + (i,), lines, issues, environ)
                for i, item in enumerate(node.value)]
    value = _LOADER.construct_object(node, deep=True)
    if environ is not None and isinstance(value, str) and "$" in value:
        value = _substitute(value, file, line, issues, format_path(path), environ)
    return value


_LOADER = yaml.SafeLoader("")


def read_yaml(path: Path, issues: list[ConfigIssue], *, environ: Mapping[str, str] | None = None,
              display: str | None = None, substitute: bool = True) -> Located | None:
    """Parse one YAML file; syntax errors and duplicate keys become issues.

    ``substitute=False`` leaves ``${VAR}`` as written (runbooks: their text is shell and
    Jinja2, where ``$`` means what the shell makes of it).
    """
    file = display or str(path)
    env = None if not substitute else os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        issues.append(ConfigIssue(file, None, "", "file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(ConfigIssue(file, None, "", f"cannot read: {exc}"))
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        issues.append(ConfigIssue(file, line, "", f"invalid YAML: {exc.problem or exc}"))
        return None
    except yaml.YAMLError as exc:
        issues.append(ConfigIssue(file, None, "", f"invalid YAML: {exc}"))
        return None
    lines: dict[Path_, tuple[str, int]] = {(): (file, 1)}
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
        return Located({}, lines)  # no document, or an empty one (``---``, ``~``): all defaults
    try:
        data = _convert(node, file, (), lines, issues, env)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        issues.append(ConfigIssue(file, mark.line + 1 if mark else None, "",
                                  f"invalid YAML: {exc.problem}"))
        return None
    return Located(data, lines)
