"""The inventory formats, parsed into a builder: Ansible INI, Ansible YAML, watchkeeper YAML.

Private to :mod:`watchkeeper.automation.inventory` (which documents the formats). Each
parser raises :class:`InventoryFail` carrying one :class:`ConfigIssue` (file:line) at the
first problem, as Ansible stops at its first one. Also here: Ansible host ranges and the
mapping of ``ansible_*`` variables to connection attributes.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import shlex
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from watchkeeper.automation.patterns import parse_address
from watchkeeper.errors import ConfigIssue

_YAML_EXTS = (".yml", ".yaml", ".json")
_HOST_KEYS = ("address", "port", "user", "key", "password_secret", "connection", "become", "jump",
              "labels", "vars", "groups")
_GROUP_KEYS = ("hosts", "children", "vars", "labels", "port", "user", "key", "password_secret",
               "connection", "become", "jump")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Where = Callable[[tuple[Any, ...]], tuple[str, int | None]]


class Sink(Protocol):
    """What the parsers fill: the inventory builder."""

    groups: Any

    def add_group(self, name: str) -> Any: ...

    def add_host(self, name: str, group: str | None = None, port: int | None = None) -> Any: ...

    def add_child(self, parent: str, child: str) -> None: ...

    def set_group_var(self, group: str, key: str, value: Any) -> None: ...


class InventoryFail(Exception):
    """One problem in an inventory source; load_inventory turns it into a ConfigError."""

    def __init__(self, issue: ConfigIssue) -> None:
        self.issue = issue


# -- host ranges -------------------------------------------------------------------------------

def expand_host_range(pattern: str) -> list[str]:
    """Expand Ansible host ranges: ``web[01:03].lan`` -> web01.lan, web02.lan, web03.lan.

    Numeric (zero padding kept from the start value), alphabetic (``[a:c]``), an
    optional step (``[1:9:2]``), several ranges in one name. Raises ValueError
    with Ansible's reason when a range is malformed.
    """
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    nrange, close, tail = rest.partition("]")
    if not close:
        raise ValueError(f"host range in {pattern!r} is missing its closing ']'")
    bounds = nrange.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{nrange}] in {pattern!r} must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError(f"host range [{nrange}] in {pattern!r} must give an end value")
    width = 0
    if beg[0] == "0" and len(beg) > 1:
        width = len(beg)
        if len(end) != width:
            raise ValueError(f"host range [{nrange}] in {pattern!r}: begin and end must have the same "
                             "width when zero-padded")
    try:
        step = int(step_text)
        if step < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"host range [{nrange}] in {pattern!r}: step must be a positive number") from None
    letters = string.ascii_letters
    seq: list[str]
    if beg in letters and end in letters and len(beg) == len(end) == 1:
        i, j = letters.index(beg), letters.index(end)
        if i > j:
            raise ValueError(f"host range [{nrange}] in {pattern!r} must have begin <= end")
        seq = list(letters[i:j + 1:step])
    else:
        try:
            lo, hi = int(beg), int(end)
        except ValueError:
            raise ValueError(f"host range [{nrange}] in {pattern!r} must be numbers or single "
                             "letters") from None
        seq = [str(n).zfill(width) for n in range(lo, hi + 1, step)]
    out: list[str] = []
    for part in seq:
        out.extend(expand_host_range(head + part + tail))
    return out


def expand_hostpattern(text: str) -> tuple[list[str], int | None]:
    """A host key as Ansible reads it: ``name``, ``name:port``, ``[v6]:port``, with ranges."""
    parsed = parse_address(text)
    name, port = parsed if parsed else (text, None)
    if text.strip().endswith(":") and port is None:
        raise ValueError(f"invalid host pattern {text!r}: ':' at the end is reserved for a port")
    names = expand_host_range(name)
    if any(n.strip() == "---" for n in names):
        raise ValueError(f"invalid host pattern {text!r}: '---' is a sign this is a YAML file "
                         "(name it .yml or .yaml)")
    return names, port

# -- ansible_* variables -> connection attributes ----------------------------------------------

_ALIASES = {
    "address": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "connection": ("ansible_connection",),
    "become": ("ansible_become",),
    "become_user": ("ansible_become_user",),
    "become_password_secret": ("watchkeeper_become_password_secret",),
    "password_secret": ("watchkeeper_password_secret",),
}
_TRUE = {"yes", "true", "on", "1", "y", "t"}


def _render(host: str, key: str, value: Any, context: dict[str, Any]) -> Any:
    if not (isinstance(value, str) and "{{" in value or isinstance(value, str) and "{%" in value):
        return value
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    try:
        for _ in range(5):  # variables may refer to variables that are templates themselves
            value = env.from_string(value).render(context)
            if "{{" not in value and "{%" not in value:
                break
    except jinja2.TemplateError as exc:
        raise InventoryFail(ConfigIssue("<inventory>", None, f"{host}.{key}",
                                f"cannot render {key}: {exc}")) from None
    return value


def _jump_from_args(args: str) -> str | None:
    try:
        words = shlex.split(args)
    except ValueError:
        return None
    for i, w in enumerate(words):
        if w == "-J" and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("-J") and len(w) > 2:
            return w[2:]
        opt = w[2:] if w.startswith("-o") and len(w) > 2 else (words[i + 1] if w == "-o" and i + 1 < len(words)
                                                              else None)
        if opt is None:
            continue
        k, _, v = opt.partition("=") if "=" in opt else opt.partition(" ")
        if k.lower() == "proxyjump":
            return v.strip()
        if k.lower() == "proxycommand":
            inner = shlex.split(v)
            if "-W" in inner:
                port = inner[inner.index("-p") + 1] if "-p" in inner[:-1] else None
                targets = [x for j, x in enumerate(inner[1:], 1) if not x.startswith("-")
                           and inner[j - 1] not in ("-W", "-p", "-i", "-o", "-l", "-F")]
                if targets:
                    return targets[-1] + (f":{port}" if port else "")
    return None


def from_ansible_vars(host: str, merged: dict[str, Any], group_names: list[str]) -> dict[str, Any]:
    context = {**merged, "inventory_hostname": host, "inventory_hostname_short": host.split(".")[0],
               "group_names": group_names}
    out: dict[str, Any] = {}
    for attr, keys in _ALIASES.items():
        for key in keys:
            if key in merged and merged[key] is not None:
                out[attr] = _render(host, key, merged[key], context)
                break
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if isinstance(merged.get(key), str):
            jump = _jump_from_args(_render(host, key, merged[key], context))
            if jump:
                out["jump"] = jump
    if "port" in out:
        try:
            out["port"] = int(out["port"])
        except (TypeError, ValueError):
            raise InventoryFail(ConfigIssue("<inventory>", None, f"{host}.ansible_port",
                                    f"must be a port number, not {out['port']!r}")) from None
    if "become" in out and isinstance(out["become"], str):
        out["become"] = out["become"].strip().lower() in _TRUE
    if "connection" in out:
        c = str(out["connection"])
        out["connection"] = "ssh" if c in ("smart", "paramiko", "ssh", "paramiko_ssh") else c
    if "key_file" in out:
        out["key_file"] = os.path.expanduser(str(out["key_file"]))
    for attr in ("address", "user", "become_user", "become_password_secret", "password_secret"):
        if attr in out:
            out[attr] = str(out[attr])
    labels = merged.get("watchkeeper_labels")
    if isinstance(labels, dict):
        out["labels"] = {str(k): label_value(v) for k, v in labels.items()}
    return out


def label_value(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


# -- YAML with lines ----------------------------------------------------------------------------

def read_yaml(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML (no ``${VAR}`` substitution: inventories are read as they are) keeping lines."""
    import yaml

    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryFail(ConfigIssue(file, None, "", f"cannot read: {exc}")) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise InventoryFail(ConfigIssue(file, mark.line + 1 if mark else None, "",
                                f"invalid YAML: {exc.problem or exc}")) from None
    except yaml.YAMLError as exc:
        raise InventoryFail(ConfigIssue(file, None, "", f"invalid YAML: {exc}")) from None
    lines: dict[tuple[Any, ...], int] = {(): 1}
    if node is None:
        return None, lines
    loader = yaml.SafeLoader("")

    def conv(n: Any, path: tuple[Any, ...]) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for kn, vn in n.value:
                key = conv(kn, path + ("<key>",)) if not isinstance(kn, yaml.ScalarNode) \
                    else loader.construct_object(kn)
                if isinstance(key, (dict, list)):
                    raise InventoryFail(ConfigIssue(file, kn.start_mark.line + 1, "", "a key must be a plain value"))
                if key in out:
                    raise InventoryFail(ConfigIssue(file, kn.start_mark.line + 1, "",
                                            f"duplicate key {key!r} (first on line {lines[path + (key,)]})"))
                lines[path + (key,)] = kn.start_mark.line + 1
                out[key] = conv(vn, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [conv(x, path + (i,)) for i, x in enumerate(n.value)]
        try:
            return loader.construct_object(n)
        except yaml.constructor.ConstructorError as exc:
            raise InventoryFail(ConfigIssue(file, n.start_mark.line + 1, "", f"invalid YAML: {exc.problem}")) from None

    return conv(node, ()), lines


# -- Ansible INI ---------------------------------------------------------------------------------

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
# What makes shlex.split(line, comments=True) differ from str.split(): quotes, escapes,
# comments, and whitespace shlex does not split on. Plain host lines (the usual case,
# split ~20x faster) have none of them.
_SHLEX_SPECIAL = re.compile(r"['\"\\#]|[^\S \t\r\n]")


def _ini_value(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text

    def coerce(v: Any) -> Any:
        if isinstance(v, (list, tuple, set)):
            return [coerce(x) for x in v]
        if isinstance(v, dict):
            return {coerce(k): coerce(x) for k, x in v.items()}
        if v is ... or isinstance(v, complex):
            return text if v is value else str(v)
        if isinstance(v, bytes):
            return v.decode("utf-8", "surrogateescape")
        return v

    return coerce(value)


def parse_ini(b: Sink, path: Path, text: str) -> None:
    file = str(path)
    pending: dict[str, dict[str, Any]] = {}
    group, state = "ungrouped", "hosts"

    def fail(lineno: int, msg: str) -> InventoryFail:
        return InventoryFail(ConfigIssue(file, lineno, "", msg))

    def add_pending_children(name: str) -> None:
        for parent in pending[name]["parents"]:
            b.add_child(parent, name)
            if parent in pending and pending[parent]["state"] == "children":
                add_pending_children(parent)
        del pending[name]

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise fail(lineno, f"section [{group}:{state}] has unknown type {state!r} "
                                   "(use [group], [group:vars] or [group:children])")
            if group not in b.groups:
                if state == "vars" and group not in pending:
                    pending[group] = {"line": lineno, "state": "vars", "name": group}
                b.add_group(group)
            if group in pending and state != "vars":
                if pending[group]["state"] == "children":
                    add_pending_children(group)
                elif pending[group]["state"] == "vars":
                    del pending[group]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise fail(lineno, f"invalid section {line!r}: no spaces or other characters are allowed "
                               "in a section name")
        if state == "hosts":
            try:
                tokens = (line.split() if _SHLEX_SPECIAL.search(line) is None
                          else shlex.split(line, comments=True))
            except ValueError as exc:
                raise fail(lineno, f"cannot parse host line {line!r}: {exc}") from None
            if not tokens:
                continue
            try:
                names, port = expand_hostpattern(tokens[0])
            except ValueError as exc:
                raise fail(lineno, str(exc)) from None
            variables: dict[str, Any] = {}
            for t in tokens[1:]:
                if "=" not in t:
                    raise fail(lineno, f"expected key=value host variable after the host name, got {t!r}")
                k, v = t.split("=", 1)
                variables[k] = _ini_value(v)
            for name in names:
                b.add_host(name, group, port).vars.update(variables)
        elif state == "vars":
            if "=" not in line:
                raise fail(lineno, f"expected key=value in [{group}:vars], got {line!r}")
            k, v = (e.strip() for e in line.split("=", 1))
            try:
                b.set_group_var(group, k, _ini_value(v))
            except ValueError as exc:
                raise fail(lineno, str(exc)) from None
        else:
            gm = _GROUPNAME.match(line)
            if not gm:
                raise fail(lineno, f"expected a group name in [{group}:children], got {line!r}")
            child = gm.group(1)
            if child not in b.groups:
                if child not in pending:
                    pending[child] = {"line": lineno, "state": "children", "name": child, "parents": [group]}
                else:
                    pending[child].setdefault("parents", []).append(group)
            else:
                b.add_child(group, child)
    for decl in pending.values():
        if decl["state"] == "vars":
            raise fail(decl["line"], f"section [{decl['name']}:vars] is for group {decl['name']!r}, "
                                     "which is not defined (add a [" + decl["name"] + "] section)")
        close = difflib.get_close_matches(decl["name"], list(b.groups), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise fail(decl["line"], f"section [{decl['parents'][-1]}:children] includes undefined group "
                                 f"{decl['name']!r}{hint}")


# -- Ansible YAML ----------------------------------------------------------------------------------

def parse_ansible_yaml(b: Sink, data: dict[Any, Any], file: str, lines: dict[Any, int]) -> None:
    def fail(path: tuple[Any, ...], msg: str) -> InventoryFail:
        p = path
        while p and p not in lines:
            p = p[:-1]
        return InventoryFail(ConfigIssue(file, lines.get(p), ".".join(str(x) for x in path), msg))

    def group(name: Any, body: Any, path: tuple[Any, ...]) -> str:
        if not isinstance(name, str):
            raise fail(path, f"group name {name!r} must be text")
        if body is not None and not isinstance(body, dict):
            raise fail(path, "a group must be a mapping with hosts, vars and children")
        b.add_group(name)
        for key, value in (body or {}).items():
            if key not in ("hosts", "vars", "children"):
                close = difflib.get_close_matches(str(key), ["hosts", "vars", "children"], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise fail(path + (key,), f"unknown key {key!r} in group {name!r}{hint} "
                                          "(allowed: hosts, vars, children)")
            if isinstance(value, str):
                value = {value: None}
            if value is None:
                continue
            if not isinstance(value, dict):
                raise fail(path + (key,), f"{key} of group {name!r} must be a mapping, not a "
                                          f"{type(value).__name__} (write `{key}: {{name: ...}}`)")
            if key == "vars":
                for k, v in value.items():
                    try:
                        b.set_group_var(name, str(k), v)
                    except ValueError as exc:
                        raise fail(path + (key, k), str(exc)) from None
            elif key == "children":
                for child, child_body in value.items():
                    b.add_child(name, group(child, child_body, path + (key, child)))
            else:
                for pattern, hvars in value.items():
                    if not isinstance(pattern, str):
                        raise fail(path + (key, pattern), f"host {pattern!r} must be text; quote it")
                    if hvars is not None and not isinstance(hvars, dict):
                        raise fail(path + (key, pattern), f"variables of host {pattern!r} must be a mapping")
                    try:
                        names, port = expand_hostpattern(pattern)
                    except ValueError as exc:
                        raise fail(path + (key, pattern), str(exc)) from None
                    for h in names:
                        b.add_host(h, name, port).vars.update(hvars or {})
        return name

    if "plugin" in data:
        raise fail(("plugin",), f"inventory plugin configs (plugin: {data['plugin']}) are not supported; "
                                "export the inventory with `ansible-inventory -i FILE --list -y > hosts.yml`")
    for name, body in data.items():
        group(name, body, (name,))


# -- watchkeeper YAML --------------------------------------------------------------------------------

def is_watchkeeper(data: Any) -> bool:
    if not isinstance(data, dict) or not data or not set(data) <= {"hosts", "groups"}:
        return False
    hosts = data.get("hosts")
    looks_ansible = isinstance(hosts, dict) and hosts and set(hosts) <= {"hosts", "vars", "children"}
    return "groups" in data or not looks_ansible


def _check_keys(spec: Any, allowed: Sequence[str], what: str, path: tuple[Any, ...],
                fail: Callable[[tuple[Any, ...], str], InventoryFail]) -> dict[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise fail(path, f"{what} must be a mapping of keys (allowed: {', '.join(allowed)})")
    for key in spec:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise fail(path + (key,), f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)})")
    return spec


def _attrs(spec: dict[str, Any], path: tuple[Any, ...], fail: Callable[[tuple[Any, ...], str], InventoryFail]
           ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("address", "user", "key", "password_secret", "jump"):
        if key in spec:
            if not isinstance(spec[key], str) or not spec[key]:
                raise fail(path + (key,), f"must be text, not {spec[key]!r}")
            out["key_file" if key == "key" else key] = (os.path.expanduser(spec[key]) if key == "key"
                                                        else spec[key])
    if "port" in spec:
        port = spec["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise fail(path + ("port",), f"must be a port number 1-65535, not {port!r}")
        out["port"] = port
    if "connection" in spec:
        if spec["connection"] not in ("ssh", "local"):
            raise fail(path + ("connection",), f"must be ssh or local, not {spec['connection']!r}")
        out["connection"] = spec["connection"]
    if "become" in spec:
        become = spec["become"]
        if isinstance(become, dict):
            _check_keys(become, ("user", "password_secret"), "become", path + ("become",), fail)
            for k, v in become.items():
                if not isinstance(v, str) or not v:
                    raise fail(path + ("become", k), f"must be text, not {v!r}")
            out["become"] = dict(become)
        elif isinstance(become, bool):
            out["become"] = become
        else:
            raise fail(path + ("become",), "must be true, false or a mapping {user, password_secret}")
    return out


def _labels(spec: dict[str, Any], path: tuple[Any, ...], fail: Callable[[tuple[Any, ...], str], InventoryFail]
            ) -> dict[str, str]:
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict):
        raise fail(path + ("labels",), "must be a mapping of label names to values")
    for k, v in labels.items():
        if not isinstance(k, str) or not _LABEL_NAME.match(k):
            raise fail(path + ("labels", k), f"label name {k!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if isinstance(v, (dict, list)) or v is None:
            raise fail(path + ("labels", k), f"label {k!r} must have a plain value, not {v!r}")
    return {k: label_value(v) for k, v in labels.items()}


def _names(value: Any, path: tuple[Any, ...], fail: Callable[[tuple[Any, ...], str], InventoryFail]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(path, "must be a list of names")
    return value


def parse_watchkeeper(b: Sink, data: dict[str, Any], file: str, where: Where) -> None:
    def fail(path: tuple[Any, ...], msg: str) -> InventoryFail:
        f, line = where(path)
        return InventoryFail(ConfigIssue(f, line, ".".join(str(x) for x in path), msg))

    hosts = data.get("hosts") or {}
    groups = data.get("groups") or {}
    if not isinstance(hosts, dict):
        raise fail(("hosts",), "must be a mapping of host names to their settings")
    if not isinstance(groups, dict):
        raise fail(("groups",), "must be a mapping of group names to their settings")
    for name in groups:
        if not isinstance(name, str) or not name:
            raise fail(("groups", name), f"group name {name!r} must be text")
        b.add_group(name)
    memberships: list[tuple[str, str, tuple[Any, ...]]] = []
    for pattern, spec in hosts.items():
        path = ("hosts", pattern)
        if not isinstance(pattern, str) or not pattern:
            raise fail(path, f"host name {pattern!r} must be text; quote it")
        spec = _check_keys(spec, _HOST_KEYS, f"host {pattern!r}", path, fail)
        try:
            names = expand_host_range(pattern)
        except ValueError as exc:
            raise fail(path, str(exc)) from None
        attrs, labels = _attrs(spec, path, fail), _labels(spec, path, fail)
        hvars = spec.get("vars") or {}
        if not isinstance(hvars, dict):
            raise fail(path + ("vars",), "must be a mapping of variable names to values")
        for name in names:
            entry = b.add_host(name)
            entry.attrs.update(attrs)
            entry.labels.update(labels)
            entry.vars.update(hvars)
            for g in _names(spec.get("groups"), path + ("groups",), fail):
                memberships.append((g, name, path + ("groups",)))
    for gname, spec in groups.items():
        path = ("groups", gname)
        spec = _check_keys(spec, _GROUP_KEYS, f"group {gname!r}", path, fail)
        g = b.groups[gname]
        g.attrs.update(_attrs(spec, path, fail))
        g.labels.update(_labels(spec, path, fail))
        gvars = spec.get("vars") or {}
        if not isinstance(gvars, dict):
            raise fail(path + ("vars",), "must be a mapping of variable names to values")
        for k, v in gvars.items():
            try:
                b.set_group_var(gname, str(k), v)
            except ValueError as exc:
                raise fail(path + ("vars", k), str(exc)) from None
        for pattern in _names(spec.get("hosts"), path + ("hosts",), fail):
            try:
                for h in expand_host_range(pattern):
                    b.add_host(h, gname)
            except ValueError as exc:
                raise fail(path + ("hosts",), str(exc)) from None
        for child in _names(spec.get("children"), path + ("children",), fail):
            if child not in b.groups:
                close = difflib.get_close_matches(child, list(groups), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else " (define it under groups:)"
                raise fail(path + ("children",), f"no group named {child!r}{hint}")
            b.add_child(gname, child)
    for gname, host, _path in memberships:
        b.add_group(gname)
        b.add_host(host, gname)
