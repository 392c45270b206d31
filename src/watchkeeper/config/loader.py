"""Load ``watchkeeper.yaml`` and its includes, validate once, report every problem with its place.

Errors read ``watchkeeper.yaml:14: checks[2].interval: "0s" must be at least 1s``.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from watchkeeper.config.models import config_model
from watchkeeper.config.yamlsource import Located, Path_, format_path, read_yaml
from watchkeeper.errors import ConfigError, ConfigIssue

__all__ = ["LoadedConfig", "load_config", "default_config", "validate_data"]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and the files it was read from."""

    config: Any
    files: tuple[Path, ...]
    path: Path | None


def default_config() -> LoadedConfig:
    """The config used when there is no file: monitor the local host."""
    return LoadedConfig(config_model()(), (), None)


def _merge(into: Located, extra: Located, issues: list[ConfigIssue]) -> None:
    """Merge an included file: lists extend, mappings merge, a scalar given twice is an error."""

    def walk(dst: Any, src: Any, path: Path_) -> Any:
        if isinstance(dst, dict) and isinstance(src, dict):
            for key, value in src.items():
                if key in dst:
                    dst[key] = walk(dst[key], value, path + (key,))
                else:
                    dst[key] = value
                    _copy_lines(path + (key,), path + (key,))
            return dst
        if isinstance(dst, list) and isinstance(src, list):
            offset = len(dst)
            for i, value in enumerate(src):
                dst.append(value)
                _copy_lines(path + (i,), path + (offset + i,))
            return dst
        file, line = extra.where(path)
        first = into.where(path)
        kinds: dict[type, str] = {dict: "a mapping", list: "a list"}
        if type(dst) in kinds and type(src) is not type(dst):
            msg = f"must be {kinds[type(dst)]}, as in {first[0]}:{first[1]}"
        else:
            msg = f"already set in {first[0]}:{first[1]}; a value may be given once"
        issues.append(ConfigIssue(file, line, format_path(path), msg))
        return dst

    def _copy_lines(src_path: Path_, dst_path: Path_) -> None:
        n = len(src_path)
        for p, where in extra.lines.items():
            if p[:n] == src_path:
                into.lines[dst_path + p[n:]] = where

    walk(into.data, extra.data, ())


def _model_at(model: Any, loc: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    """Find the pydantic model that validates the value at ``loc`` (for did-you-mean hints)."""
    from watchkeeper.monitor.checks import check_types

    current: Any = model
    value = data
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            value = value.get(part) if isinstance(value, dict) else None
            continue
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and part < len(value) else None
            args = getattr(current, "__args__", ())
            current = args[0] if args else None
            if current is not None and not (isinstance(current, type) and issubclass(current, BaseModel)):
                # the check union: pick the member by the item's type
                kind = value.get("type") if isinstance(value, dict) else None
                current = check_types().get(kind) if isinstance(kind, str) else None
            continue
        if isinstance(part, str) and part in check_types():
            continue  # pydantic puts the union tag into loc
        args = [a for a in getattr(current, "__args__", ()) if isinstance(a, type)
                and issubclass(a, BaseModel)]
        if not args:
            return None
        current = args[0]
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    args = [a for a in getattr(current, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
    return args[0] if args else None


def _issue_for(err: Any, located: Located, model: Any) -> ConfigIssue:
    from watchkeeper.monitor.checks import check_types

    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in check_types()
                                                and err["type"] != "extra_forbidden"))
    # pydantic inserts the union member's tag into loc; drop it from paths
    clean: list[Any] = []
    for i, p in enumerate(err["loc"]):
        if isinstance(p, str) and p in check_types() and i > 0 and isinstance(err["loc"][i - 1], int):
            continue
        clean.append(p)
    loc = tuple(clean)
    kind = err["type"]
    file, line = located.where(loc)
    path = format_path(loc)
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1], located.data)
        allowed = sorted(f.alias or n for n, f in parent.model_fields.items()) if parent else []
        key = str(loc[-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        msg = f"unknown key {key!r}"
        if close:
            msg += f"; did you mean {close[0]!r}?"
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
        return ConfigIssue(file, line, path, msg)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        types = sorted(check_types())
        given = err.get("input", {}).get("type") if isinstance(err.get("input"), dict) else None
        if given is None:
            return ConfigIssue(file, line, path, f"missing 'type' (one of: {', '.join(types)})")
        close = difflib.get_close_matches(str(given), types, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        file, line = located.where(loc + ("type",))
        return ConfigIssue(file, line, format_path(loc + ("type",)),
                           f"unknown check type {given!r}{hint} (allowed: {', '.join(types)})")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "missing":
        msg = "required key is missing"
    elif kind in ("model_type", "model_attributes_type", "dict_type", "list_type"):
        # pydantic says "instance of ServerConfig"; say it in YAML's words
        wanted = "a list" if kind == "list_type" else "a mapping of keys"
        msg = f"must be {wanted}, not {_yaml_kind(err.get('input'))}"
    elif kind not in ("duration", "duration_min", "size", "value_error") and "input" in err \
            and not isinstance(err["input"], (dict, list)):
        msg = f"{err['input']!r}: {msg}"
    # an error raised by a model validator that names its own path
    own = _OWN_PATH.match(msg) if kind == "value_error" else None
    if own:
        sub, msg = own.group(1), own.group(2)
        full = path + ("." if path else "") + sub if path else sub
        file, line = located.where(_parse_path(full))
        return ConfigIssue(file, line, full, msg)
    return ConfigIssue(file, line, path, msg)


def _yaml_kind(value: Any) -> str:
    """How a value looks in YAML, for messages: ``a list``, ``the number 5``, ``the text 'x'``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"the text {str(value)!r}"


# "route.routes[1].receiver: unknown receiver ..." — a validator naming the path below its model
_OWN_PATH = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): (.*)$", re.DOTALL)


def _parse_path(text: str) -> Path_:
    out: list[str | int] = []
    for part in text.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and part.endswith("]"):
            out.append(int(part[1:-1]))
        else:
            out.append(part)
    return tuple(out)


def validate_data(located: Located) -> Any:
    """Validate merged data; raise ConfigError listing each problem with its place."""
    model = config_model()
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        issues = [_issue_for(e, located, model) for e in exc.errors(include_url=False)]
        raise ConfigError(issues) from None


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read ``path`` and the files its ``include:`` globs name, then validate.

    Raises ConfigError with every problem found (file, line, key path, what is allowed).
    """
    root = Path(path)
    issues: list[ConfigIssue] = []
    located = read_yaml(root, issues, environ=environ)
    files = [root]
    if located is not None and not isinstance(located.data, dict):
        issues.append(ConfigIssue(str(root), 1, "", "the top level must be a mapping of sections "
                                  "(server, storage, collectors, checks, include)"))
        located = None
    if located is None:
        raise ConfigError(issues)
    includes = located.data.get("include", [])
    if isinstance(includes, str):
        includes = [includes]
        located.data["include"] = includes
    if not isinstance(includes, list):
        file, line = located.where(("include",))
        issues.append(ConfigIssue(file, line, "include", "must be a list of file globs"))
        includes = []
    seen = {root.resolve()}
    for i, pattern in enumerate(includes):
        if not isinstance(pattern, str):
            continue
        full = pattern if os.path.isabs(pattern) else str(root.parent / pattern)
        matches = sorted(glob.glob(full))
        if not matches and not glob.has_magic(pattern):
            file, line = located.where(("include", i))
            issues.append(ConfigIssue(file, line, f"include[{i}]", f"{pattern!r}: no such file"))
        for match in matches:
            mp = Path(match)
            if mp.resolve() in seen:
                continue
            seen.add(mp.resolve())
            extra = read_yaml(mp, issues, environ=environ)
            if extra is None:
                continue
            if not isinstance(extra.data, dict):
                issues.append(ConfigIssue(str(mp), 1, "", "an included file must be a mapping of sections"))
                continue
            if "include" in extra.data:
                file, line = extra.where(("include",))
                issues.append(ConfigIssue(file, line, "include",
                                          "included files may not include others; list every glob in the main file"))
                continue
            files.append(mp)
            _merge(located, extra, issues)
    if issues:
        raise ConfigError(issues)
    config = validate_data(located)
    return LoadedConfig(config, tuple(files), root)
