"""Inventories: watchkeeper's YAML, Ansible INI and YAML, read into one set of hosts and groups.

Sources (``load_inventory``), detected as Ansible detects them:

* a ``.yml``/``.yaml``/``.json`` file: watchkeeper's format when its top-level keys are
  only ``hosts`` and/or ``groups`` (see below), else an Ansible YAML inventory;
* any other file: an Ansible INI inventory;
* a directory: every file in it (sorted; hidden files, ``group_vars``, ``host_vars``
  and Ansible's ignored extensions skipped);
* ``"web1,web2,"`` (a comma in a string that is not a path): a list of hosts.

Next to each source, ``group_vars/NAME[.yml|.yaml|.json]`` (or a directory of such
files) and ``host_vars/NAME...`` are read as Ansible reads them. Variables merge
with Ansible's precedence (``combine_vars``, replace): ``all``'s inventory vars <
the host's groups' inventory vars (by depth, ``ansible_group_priority``, name) <
``group_vars/all`` < ``group_vars/GROUP`` < the host's inventory vars < ``host_vars/``.

watchkeeper's format::

    hosts:
      web1:
        address: 10.0.0.11          # default: the name
        port: 2222
        user: deploy
        key: ~/.ssh/deploy_ed25519
        become: true                # or {user: postgres, password_secret: pg-sudo}
        jump: bastion               # a host of this inventory, or [user@]host[:port]
        connection: ssh             # or local
        password_secret: web-login  # a name in the secret store
        labels: {role: web, env: prod}
        vars: {http_port: 8080}
        groups: [web]
      "db[01:03].lan": {labels: {role: db}}   # a range: db01.lan .. db03.lan
    groups:
      web: {hosts: [web1], children: [canary], labels: {tier: front}, user: deploy}
      all: {user: ops}              # connection keys on a group apply to its hosts

Connection attributes written this way win over ``ansible_*`` variables. In Ansible
inventories these variables set them: ``ansible_host``, ``ansible_port``,
``ansible_user``, ``ansible_ssh_private_key_file``, ``ansible_connection``,
``ansible_become``, ``ansible_become_user``, ``ansible_ssh_common_args`` /
``ansible_ssh_extra_args`` (``-J``/``ProxyJump``/``ProxyCommand ... -W`` -> ``jump``)
and the watchkeeper additions ``watchkeeper_labels`` (a mapping, merged across
groups), ``watchkeeper_become_password_secret`` and ``watchkeeper_password_secret``
(names in the secret store). A literal ``ansible_become_password`` stays in
``Host.vars`` as Ansible keeps it. ``{{ ... }}`` in a connection variable is rendered
(sandboxed Jinja2) with the host's variables, ``inventory_hostname`` and ``group_names``.

``localhost`` always exists and connects locally unless the inventory sets
``ansible_connection``/``connection`` for it. When the inventory does not define it,
it is the implicit localhost: in no group (``all`` does not select it) but with
``all``'s variables, as in Ansible.

Errors: ConfigError with ``file:line`` for a malformed inventory; InputError from
:meth:`Inventory.select` for an unknown name in a pattern.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from watchkeeper.automation._inventory_formats import (
    InventoryFail,
    Where,
    expand_host_range,
    from_ansible_vars,
    is_watchkeeper,
    label_value,
    parse_ansible_yaml,
    parse_ini,
    parse_watchkeeper,
    read_yaml,
)
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.patterns import parse_address, resolve_pattern
from watchkeeper.errors import ConfigError, ConfigIssue, NotFoundError

__all__ = ["Inventory", "load_inventory", "expand_host_range", "host_to_dict"]

_YAML_EXTS = (".yml", ".yaml", ".json")
_DIR_IGNORE = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
                         r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$")

# -- the builder -------------------------------------------------------------------------------

@dataclass
class _Group:
    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    dir_vars: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    priority: int = 1


@dataclass
class _HostEntry:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    dir_vars: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


class _Builder:
    """Collects hosts and groups from every source, then reconciles them as Ansible does."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {"all": _Group("all"), "ungrouped": _Group("ungrouped")}
        self.add_child("all", "ungrouped")
        self.hosts: dict[str, _HostEntry] = {}
        self.var_dirs: list[Path] = []
        self.sources: list[str] = []

    def add_group(self, name: str) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(name)
        return self.groups[name]

    def add_host(self, name: str, group: str | None = None, port: int | None = None) -> _HostEntry:
        entry = self.hosts.get(name)
        if entry is None:
            entry = self.hosts[name] = _HostEntry(name)
            if port is not None:
                entry.vars["ansible_port"] = port
        if group is not None and name not in self.groups[group].hosts:
            self.groups[group].hosts.append(name)
        return entry

    def add_child(self, parent: str, child: str) -> None:
        p, c = self.groups[parent], self.groups[child]
        if child not in p.children:
            p.children.append(child)
            c.parents.append(parent)

    def set_group_var(self, group: str, key: str, value: Any) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"ansible_group_priority of group {group!r} must be a number, "
                                 f"not {value!r}") from None
        else:
            self.groups[group].vars[key] = value

    # -- reconcile -----------------------------------------------------------------------------

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for child in self.groups[name].children:
                if state.get(child) == 1:
                    loop = " -> ".join(path[path.index(child):] + [child]) if child in path else child
                    raise InventoryFail(ConfigIssue(self.sources[0] if self.sources else "<inventory>", None,
                                            "", f"groups form a loop: {loop}"))
                if child not in state:
                    visit(child, path + [child])
            state[name] = 2

        for name in list(self.groups):
            if name not in state:
                visit(name, [name])

    def finish(self) -> Inventory:
        for g in list(self.groups.values()):
            if g.name != "all" and not g.parents:
                self.add_child("all", g.name)
        self._check_cycles()
        depth = self._depths()
        ancestors: dict[str, list[str]] = {}

        def ancestors_of(name: str) -> list[str]:
            if name not in ancestors:
                out: list[str] = []
                for p in self.groups[name].parents:
                    for a in [p, *ancestors_of(p)]:
                        if a not in out:
                            out.append(a)
                ancestors[name] = out
            return ancestors[name]

        host_groups: dict[str, list[str]] = {h: [] for h in self.hosts}
        for g in self.groups.values():
            for h in g.hosts:
                for name in [g.name, *ancestors_of(g.name)]:
                    if name not in host_groups[h]:
                        host_groups[h].append(name)
        ungrouped = self.groups["ungrouped"]
        for h, gs in host_groups.items():
            if "ungrouped" in gs and set(gs) - {"all", "ungrouped"}:
                ungrouped.hosts.remove(h)
                gs.remove("ungrouped")
            elif not set(gs) - {"all"}:
                if h not in ungrouped.hosts:
                    ungrouped.hosts.append(h)
                for name in ("ungrouped", "all"):
                    if name not in gs:
                        gs.append(name)
        implicit = "localhost" not in self.hosts
        local_entry = _HostEntry("localhost")
        self._load_var_dirs({"localhost": local_entry} if implicit else {})
        hosts: dict[str, Host] = {}
        for name, entry in self.hosts.items():
            groups = sorted((self.groups[g] for g in host_groups[name] if g != "all"),
                            key=lambda g: (depth[g.name], g.priority, g.name))
            hosts[name] = self._make_host(entry, groups, frozenset(host_groups[name]))
        if implicit:
            hosts["localhost"] = self._make_host(local_entry, [], frozenset())
        for name, host in hosts.items():
            via = hosts.get(host.jump) if host.jump else None
            if via is not None and via.name != name:
                user = f"{via.user}@" if via.user else ""
                hosts[name] = replace(host, jump=f"{user}{via.target}:{via.port}")
        members = {g: self._group_hosts(g) for g in self.groups}
        return Inventory(hosts, members, implicit_localhost=implicit, sources=tuple(self.sources))

    def _depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}

        def d(name: str) -> int:
            if name not in depth:
                parents = self.groups[name].parents
                depth[name] = max((d(p) + 1 for p in parents), default=0)
            return depth[name]

        for name in self.groups:
            d(name)
        return depth

    def _group_hosts(self, name: str) -> list[str]:
        """Own hosts, then descendants' breadth first (Ansible's ``get_hosts`` order)."""
        order = [name]
        seen = {name}
        level = [name]
        while level:
            nxt: list[str] = []
            for g in level:
                for c in self.groups[g].children:
                    if c not in seen:
                        seen.add(c)
                        order.append(c)
                        nxt.append(c)
            level = nxt
        out = dict.fromkeys(h for g in order for h in self.groups[g].hosts)
        return list(out)

    # -- group_vars/ and host_vars/ ------------------------------------------------------------

    def _load_var_dirs(self, extra_hosts: dict[str, _HostEntry]) -> None:
        issues: list[ConfigIssue] = []
        hosts = {**self.hosts, **extra_hosts}
        for base in dict.fromkeys(self.var_dirs):
            kinds: tuple[tuple[str, Mapping[str, _Group | _HostEntry]], ...] = (
                ("group_vars", self.groups), ("host_vars", hosts))
            for kind, names in kinds:
                vdir = base / kind
                if not vdir.is_dir():
                    continue
                listing = {p.name: p for p in vdir.iterdir()}
                for name, entity in names.items():
                    for path in _vars_files(listing, name):
                        data = _read_vars_file(path, issues)
                        if data is not None:
                            entity.dir_vars.update(data)
        if issues:
            raise ConfigError(issues)

    # -- the final host --------------------------------------------------------------------------

    def _make_host(self, entry: _HostEntry, groups: list[_Group], group_names: frozenset[str]) -> Host:
        all_group = self.groups["all"]
        layers = [all_group.vars, *(g.vars for g in groups), all_group.dir_vars,
                  *(g.dir_vars for g in groups), entry.vars, entry.dir_vars]
        merged: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for layer in layers:
            merged.update(layer)
            # watchkeeper_labels merge key by key (other mappings are replaced, as in Ansible)
            wl = layer.get("watchkeeper_labels")
            if isinstance(wl, dict):
                labels.update({str(k): label_value(v) for k, v in wl.items()})
        attrs: dict[str, Any] = {}
        for g in [all_group, *groups]:
            attrs.update(g.attrs)
            labels.update(g.labels)
        attrs.update(entry.attrs)
        labels.update(entry.labels)
        conn = from_ansible_vars(entry.name, merged, sorted(group_names - {"all", "ungrouped"}))
        conn.pop("labels", None)
        conn.update(attrs)
        become = conn.pop("become", None)
        if isinstance(become, dict):
            conn["become"] = True
            if become.get("user"):
                conn["become_user"] = become["user"]
            if become.get("password_secret"):
                conn["become_password_secret"] = become["password_secret"]
        elif become is not None:
            conn["become"] = bool(become)
        if entry.name == "localhost" and "connection" not in conn:
            conn["connection"] = "local"
        return Host(name=entry.name, groups=group_names, labels=labels, vars=merged, **conn)


def _vars_files(listing: Mapping[str, Path], name: str) -> list[Path]:
    """Ansible's ``find_vars_files``: NAME (file or dir), else NAME.yml, .yaml, .json: the first found."""
    for ext in ("", *_YAML_EXTS):
        path = listing.get(name + ext)
        if path is None:
            continue
        if path.is_dir():
            return _dir_vars_files(path)
        return [path]
    return []


def _dir_vars_files(path: Path) -> list[Path]:
    out: list[Path] = []
    for child in sorted(path.iterdir(), key=lambda p: p.name):
        if child.name.startswith(".") or child.name.endswith("~"):
            continue
        if child.is_dir():
            out.extend(_dir_vars_files(child))
        elif child.suffix in ("", *_YAML_EXTS):
            out.append(child)
    return out


def _read_vars_file(path: Path, issues: list[ConfigIssue]) -> dict[str, Any] | None:
    try:
        data, _ = read_yaml(path)
    except InventoryFail as exc:
        issues.append(exc.issue)
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        issues.append(ConfigIssue(str(path), 1, "", "a vars file must be a mapping of names to values"))
        return None
    return data


# -- loading --------------------------------------------------------------------------------------

def _load_file(b: _Builder, path: Path) -> None:
    b.sources.append(str(path))
    b.var_dirs.append(path.parent)
    if path.suffix in _YAML_EXTS:
        data, lines = read_yaml(path)
        if data is None:
            return
        if not isinstance(data, dict):
            raise InventoryFail(ConfigIssue(str(path), 1, "", "an inventory must be a mapping (groups, or "
                                                      "watchkeeper's hosts/groups)"))
        if is_watchkeeper(data):
            def where(p: tuple[Any, ...]) -> tuple[str, int | None]:
                while p and p not in lines:
                    p = p[:-1]
                return str(path), lines.get(p)

            parse_watchkeeper(b, data, str(path), where)
        else:
            parse_ansible_yaml(b, data, str(path), lines)
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryFail(ConfigIssue(str(path), None, "", f"cannot read: {exc}")) from None
    parse_ini(b, path, text)


def _load_source(b: _Builder, source: str | Path) -> None:
    text = str(source)
    path = Path(os.path.expanduser(text))
    if isinstance(source, str) and "," in text and not path.exists():
        b.sources.append(text)
        for item in text.split(","):
            item = item.strip()
            if item:
                parsed = parse_address(item)
                name, port = parsed if parsed else (item, None)
                b.add_host(name, "ungrouped", port)
        return
    if path.is_dir():
        b.var_dirs.append(path)
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            if not _DIR_IGNORE.search(child.name):
                _load_source(b, child)
        return
    if not path.exists():
        raise InventoryFail(ConfigIssue(text, None, "", "inventory not found (give a file, a directory, "
                                                "or hosts as 'web1,web2,')"))
    _load_file(b, path)


def load_inventory(sources: str | Path | Sequence[str | Path] | None = None, *,
                   config: Mapping[str, Any] | None = None, config_file: str = "watchkeeper.yaml",
                   config_where: Where | None = None) -> Inventory:
    """Read inventories (files, directories, ``"a,b,"`` host lists) and the config's ``hosts:``.

    Later sources add to and override earlier ones, as repeated ``-i`` do in Ansible.
    Raises ConfigError with file:line when a source is missing or malformed.
    """
    b = _Builder()
    items: Iterable[str | Path] = [] if sources is None else (
        [sources] if isinstance(sources, (str, Path)) else sources)
    try:
        for source in items:
            _load_source(b, source)
        if config:
            def where(p: tuple[Any, ...]) -> tuple[str, int | None]:
                return config_where(p) if config_where else (config_file, None)

            data = dict(config) if set(config) <= {"hosts", "groups"} and config else {"hosts": dict(config)}
            b.sources.append(config_file)
            parse_watchkeeper(b, data, config_file, where)
        return b.finish()
    except InventoryFail as exc:
        raise ConfigError([exc.issue]) from None


# -- the inventory ------------------------------------------------------------------------------------

class Inventory:
    """Hosts and groups, and Ansible host patterns over them.

    ``hosts`` maps every name to its :class:`Host` (``localhost`` always present);
    ``groups`` maps each group to every host in it, child groups' hosts included.
    """

    def __init__(self, hosts: dict[str, Host], group_members: dict[str, list[str]], *,
                 implicit_localhost: bool = True, sources: tuple[str, ...] = ()) -> None:
        self.hosts = hosts
        self._members = group_members
        self.groups: dict[str, set[str]] = {g: set(m) for g, m in group_members.items()}
        self._implicit = implicit_localhost
        self.sources = sources

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, *, file: str = "watchkeeper.yaml",
                    where: Where | None = None) -> Inventory:
        """The inventory of the config's ``hosts:`` (host name -> settings, watchkeeper format;
        a mapping with ``hosts``/``groups`` keys is read as a whole watchkeeper inventory)."""
        return load_inventory(None, config=section or {}, config_file=file, config_where=where)

    # PatternSource
    def host_names(self) -> list[str]:
        return [h for h in self.hosts if not (self._implicit and h == "localhost")]

    def group_names(self) -> list[str]:
        return list(self._members)

    def group_hosts(self, group: str) -> list[str]:
        """A group's hosts in Ansible's order; NotFoundError for an unknown group."""
        try:
            return list(self._members[group])
        except KeyError:
            close = difflib.get_close_matches(group, list(self._members), n=1)
            raise NotFoundError(f"no group named {group!r}" + (f"; did you mean {close[0]!r}?" if close
                                                               else "")) from None

    def host_labels(self, host: str) -> Mapping[str, str]:
        return self.hosts[host].labels

    def implicit_localhost(self) -> str | None:
        return "localhost" if self._implicit else None

    def select_names(self, pattern: str | Sequence[str] = "all") -> list[str]:
        """Host names ``pattern`` selects (see :mod:`watchkeeper.automation.patterns`)."""
        return resolve_pattern(self, pattern)

    def select(self, pattern: str | Sequence[str] = "all") -> list[Host]:
        """The hosts ``pattern`` selects, in Ansible's order.

        Raises InputError for an unknown host or group (with a did-you-mean), a bad
        regex or label selector, or a subscript past the end.
        """
        return [self.hosts[n] for n in resolve_pattern(self, pattern)]

    def get(self, name: str) -> Host:
        """One host by name; NotFoundError with a did-you-mean."""
        try:
            return self.hosts[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.hosts), n=1)
            raise NotFoundError(f"no host named {name!r} in the inventory"
                                + (f"; did you mean {close[0]!r}?" if close else "")) from None

    def __len__(self) -> int:
        return len(self.hosts)


def host_to_dict(host: Host) -> dict[str, Any]:
    """A host for ``--json`` and the API: connection settings, groups, labels (no vars: they
    may hold passwords)."""
    return {
        "name": host.name, "address": host.target, "port": host.port, "user": host.user,
        "connection": host.connection, "key_file": host.key_file, "become": host.become,
        "become_user": host.become_user if host.become else None, "jump": host.jump,
        "groups": sorted(host.groups - {"all"}), "labels": dict(sorted(host.labels.items())),
    }
