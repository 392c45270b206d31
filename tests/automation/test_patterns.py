"""Host patterns: Ansible's splitting, order of operations, globs, regexes, subscripts; label
selectors; errors. Checked against Ansible itself (ansible-core's InventoryManager) on the
fixture inventories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from watchkeeper.automation.inventory import Inventory, load_inventory
from watchkeeper.automation.patterns import LabelSelector, split_pattern
from watchkeeper.errors import InputError, QueryError

FIX = Path(__file__).parent.parent / "fixtures" / "inventory"


@pytest.fixture(scope="module")
def ini() -> Inventory:
    return load_inventory(FIX / "ini" / "hosts.ini")


@pytest.fixture(scope="module")
def wk() -> Inventory:
    return load_inventory(FIX / "watchkeeper" / "inventory.yaml")


@pytest.mark.parametrize(("pattern", "terms"), [
    ("all", ["all"]),
    ("web:db", ["web", "db"]),
    ("web:&prod:!web3", ["web", "&prod", "!web3"]),
    ("web, db ,&prod", ["web", "db", "&prod"]),
    ("web[1:3]:db[0]", ["web[1:3]", "db[0]"]),
    ("::1", ["::1"]),
    ("host.example.com:2222", ["host.example.com:2222"]),  # a host:port stays whole, as in Ansible
    ("~web\\d+:db", ["~web\\d+", "db"]),
    ("web:&prod,db", ["web", "&prod", "db"]),  # watchkeeper also splits comma parts at ':'
    ("{role=db}", ["{role=db}"]),
    ("web:&{env=prod, role=~\"w.*\"}:!{canary=true}", ["web", "&{env=prod, role=~\"w.*\"}", "!{canary=true}"]),
    ("{a=b,c=d},x", ["{a=b,c=d}", "x"]),
    ("", []),
])
def test_split_pattern(pattern: str, terms: list[str]) -> None:
    assert split_pattern(pattern) == terms


@pytest.mark.parametrize(("pattern", "hosts"), [
    ("web", ["web1", "web2", "web3", "web-canary.lan"]),
    ("web:!canary", ["web1", "web2", "web3"]),
    ("!canary:web", ["web1", "web2", "web3"]),  # exclusions apply last, wherever written
    ("&web:db", []),  # intersections come after every union: db & web
    ("db:web:&prod:!web2", ["db1", "db2", "web1", "web3", "web-canary.lan"]),
    ("!web", ["bastion", "db1", "db2"]),  # only exclusions: start from all
    ("web[0]", ["web1"]),
    ("web[-1]", ["web-canary.lan"]),
    ("web[1:2]", ["web2", "web3"]),
    ("web[2:]", ["web3", "web-canary.lan"]),
    ("web?", ["web1", "web2", "web3"]),
    ("web*", ["web1", "web2", "web3", "web-canary.lan"]),  # group web matches, and the hosts
    ("~db\\d", ["db1", "db2"]),
    ("~(web|db)1", ["web1", "db1"]),
    ("{role=db}", ["db1", "db2"]),
    ("{role=~\"w.*\", env!=staging}", ["web1", "web2", "web3"]),
    ("{canary=\"true\"}", ["web1"]),
    ("{role!~db}", ["bastion", "web1", "web2", "web3", "web-canary.lan"]),
    ("prod:&{tier=front}", ["web1", "web2", "web3", "web-canary.lan"]),
    ("all:!{role=web}", ["bastion", "db1", "db2", "web-canary.lan"]),
    ("web1,db2", ["web1", "db2"]),
    ("localhost", ["localhost"]),
    ("all", ["bastion", "web1", "web2", "web3", "db1", "db2", "web-canary.lan"]),
    ("zzz*", []),  # a glob matching nothing selects nothing
])
def test_resolve(wk: Inventory, pattern: str, hosts: list[str]) -> None:
    assert wk.select_names(pattern) == hosts


@pytest.mark.parametrize(("pattern", "message"), [
    ("wbe", "no host or group named 'wbe'; did you mean 'web'?"),
    ("web:!canry", "no host or group named 'canry' in pattern 'web:!canry'; did you mean 'canary'?"),
    ("web:&prd", "no host or group named 'prd' in pattern 'web:&prd'; did you mean 'prod'?"),
    ("nothing", "no host or group named 'nothing'"),
    ("web[7]", "no host at subscript [7] of 'web' (it has 4 hosts; the first is [0])"),
    ("~web(", "invalid host pattern '~web(': missing ), unterminated subpattern at position 3"),
    ("{role=db", "label selector '{role=db' is missing its closing '}'"),
    ("{role db}", "label selector '{role db}' does not parse at 'role db'"),
    ("{}", "label selector '{}' is empty; write at least one matcher, as {role=db}"),
])
def test_pattern_errors(wk: Inventory, pattern: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        wk.select(pattern)
    assert err.value.message == message


def test_selector_regex_error_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        LabelSelector.parse("{role=~\"(\"}")


def test_unknown_name_hint_lists_groups(wk: Inventory) -> None:
    with pytest.raises(InputError) as err:
        wk.select("wbe")
    assert err.value.hint == "list what there is with `watchkeeper hosts`; groups: all, ungrouped, web, canary, " \
                             "db, prod"


# -- Ansible as the oracle --------------------------------------------------------------------------

_ORACLE = r"""
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.inventory.manager import InventoryManager
from ansible.vars.manager import VariableManager
src, patterns = sys.argv[1], json.loads(sys.argv[2])
loader = DataLoader()
inv = InventoryManager(loader=loader, sources=[src])
vm = VariableManager(loader=loader, inventory=inv)
out = {"patterns": {}, "hostvars": {}, "groups": inv.get_groups_dict()}
for p in patterns:
    out["patterns"][p] = [h.name for h in inv.get_hosts(p)]
    inv.clear_pattern_cache()
for h in inv.get_hosts("all"):
    out["hostvars"][h.name] = json.loads(json.dumps(vm.get_vars(host=h, include_hostvars=False), default=str))
print(json.dumps(out))
"""

_MAGIC = {"ansible_config_file", "ansible_facts", "ansible_playbook_python", "ansible_version", "group_names",
          "groups", "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short",
          "playbook_dir", "omit", "ansible_check_mode", "ansible_diff_mode", "ansible_forks",
          "ansible_inventory_sources", "ansible_verbosity", "ansible_run_tags", "ansible_skip_tags",
          "ansible_limit", "ansible_dependent_role_names", "ansible_play_role_names", "ansible_role_names"}

_PATTERNS = {
    "ini/hosts.ini": [
        "all", "webservers", "webservers:dbservers", "webservers:&prod", "webservers:!web03.example.com",
        "usa", "usa:!raleigh", "southeast:&webservers", "prod:!southeast:&usa", "!southeast",
        "&canary", "web*", "web0[1-2]*", "*.example.com:!db*", "~db.*", "~(web|db)-?[ab0]",
        "webservers[0]", "webservers[1:2]", "webservers[-1]", "webservers[3:]", "db-a.example.com,jumper",
        "ungrouped", "localhost", "local:webservers[0]", "atlanta,raleigh,&dbservers", "*",
    ],
    "yaml/inventory.yml": [
        "all", "webservers", "prod", "prod:!staging", "staging:&webservers", "dbservers", "replicas",
        "~.*db.*", "*example.com", "2001:db8::10", "webservers[4]", "ungrouped", "localhost", "127.0.0.1",
        "empty_group:webservers", "all:!webservers",
    ],
}

# patterns whose groups have no grandchildren: Ansible's order is deterministic, so compare it
_ORDERED = {
    "webservers", "webservers:dbservers", "webservers:&prod", "webservers:!web03.example.com", "&canary",
    "web*", "web0[1-2]*", "~db.*", "~(web|db)-?[ab0]", "webservers[0]", "webservers[1:2]", "webservers[-1]",
    "webservers[3:]", "db-a.example.com,jumper", "ungrouped", "localhost", "local:webservers[0]",
    "atlanta,raleigh,&dbservers", "staging:&webservers", "dbservers", "replicas", "2001:db8::10",
    "webservers[4]", "127.0.0.1", "empty_group:webservers",
}


def _ansible_python() -> str:
    """The interpreter that has ansible-core: this venv, installing it if needed (never skip)."""
    probe = subprocess.run([sys.executable, "-c", "import ansible"], capture_output=True)
    if probe.returncode != 0:
        install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "ansible-core>=2.15"],
                                 capture_output=True, text=True)
        assert install.returncode == 0, f"cannot install ansible-core for the comparison: {install.stderr}"
    return sys.executable


@pytest.mark.parametrize("source", sorted(_PATTERNS))
def test_same_as_ansible(source: str, tmp_path: Path) -> None:
    patterns = _PATTERNS[source]
    env = {"ANSIBLE_HOME": str(tmp_path / "home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_HOST_PATTERN_MISMATCH": "ignore", "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
    proc = subprocess.run([_ansible_python(), "-c", _ORACLE, str(FIX / source), json.dumps(patterns)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    want = json.loads(proc.stdout)
    inv = load_inventory(FIX / source)
    for p in patterns:
        if p in _ORDERED:
            assert inv.select_names(p) == want["patterns"][p], p
        else:
            # Ansible walks groups more than one level deep through a set of Group objects
            # (hashed by id): its order there varies from run to run; the hosts do not
            assert sorted(inv.select_names(p)) == sorted(want["patterns"][p]), p
    for group, members in want["groups"].items():
        assert sorted(inv.group_hosts(group)) == sorted(members), group
    assert sorted(want["hostvars"]) == sorted(inv.groups["all"])
    for name, ansible_vars in want["hostvars"].items():
        expected = {k: v for k, v in ansible_vars.items() if k not in _MAGIC}
        assert inv.hosts[name].vars == expected, name
