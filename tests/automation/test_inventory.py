"""Inventories: Ansible INI and YAML read as Ansible reads them, watchkeeper's YAML, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from watchkeeper.automation.hosts import Host
from watchkeeper.automation.inventory import (
    Inventory,
    expand_host_range,
    host_to_dict,
    load_inventory,
)
from watchkeeper.cli.hosts_cmd import hosts
from watchkeeper.errors import ConfigError, InputError, NotFoundError

FIX = Path(__file__).parent.parent / "fixtures" / "inventory"
HOME = os.path.expanduser("~")


@pytest.fixture(scope="module")
def ini() -> Inventory:
    return load_inventory(FIX / "ini" / "hosts.ini")


@pytest.fixture(scope="module")
def yml() -> Inventory:
    return load_inventory(FIX / "yaml" / "inventory.yml")


@pytest.fixture(scope="module")
def wk() -> Inventory:
    return load_inventory(FIX / "watchkeeper" / "inventory.yaml")


# -- ranges --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "expected"), [
    ("web[01:03].lan", ["web01.lan", "web02.lan", "web03.lan"]),
    ("web[1:3]", ["web1", "web2", "web3"]),
    ("web[8:10]", ["web8", "web9", "web10"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("n[1:7:3]", ["n1", "n4", "n7"]),
    ("r[1:2]-[a:b]", ["r1-a", "r1-b", "r2-a", "r2-b"]),
    ("[:2]x", ["0x", "1x", "2x"]),
    ("plain.example.com", ["plain.example.com"]),
])
def test_expand_host_range(pattern: str, expected: list[str]) -> None:
    assert expand_host_range(pattern) == expected


@pytest.mark.parametrize(("pattern", "message"), [
    ("web[1:]", "host range [1:] in 'web[1:]' must give an end value"),
    ("web[01:100]", "host range [01:100] in 'web[01:100]': begin and end must have the same width "
                    "when zero-padded"),
    ("web[c:a]", "host range [c:a] in 'web[c:a]' must have begin <= end"),
    ("web[1]", "host range [1] in 'web[1]' must be begin:end or begin:end:step"),
    ("web[1:3", "host range in 'web[1:3' is missing its closing ']'"),
])
def test_expand_host_range_errors(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        expand_host_range(pattern)
    assert str(err.value) == message


# -- Ansible INI ---------------------------------------------------------------------------------

def test_ini_groups_children_and_ungrouped(ini: Inventory) -> None:
    assert ini.group_hosts("ungrouped") == ["mail.example.com", "jumper"]
    assert ini.group_hosts("webservers") == ["web01.example.com", "web02.example.com", "web03.example.com",
                                             "web04.example.com", "foo.example.com", "bar.example.com"]
    assert ini.group_hosts("dbservers")[:3] == ["db-a.example.com", "db-b.example.com", "db-c.example.com"]
    # [usa:children] names northwest before [northwest] is declared: resolved at the end
    assert ini.groups["usa"] == {"tacoma.example.com", "web01.example.com", "db-a.example.com",
                                 "one.example.com", "web03.example.com", "db-b.example.com"}
    assert ini.hosts["web01.example.com"].groups == frozenset(
        {"all", "webservers", "prod", "atlanta", "southeast", "usa"})
    assert "localhost" in ini.groups["all"]  # defined in [local], so a real member of all


def test_ini_variables_follow_ansible_precedence(ini: Inventory) -> None:
    db_a = ini.hosts["db-a.example.com"].vars
    # [southeast:vars] ntp_server < group_vars/all.yml (inventory group vars lose to group_vars/)
    assert db_a["ntp_server"] == "ntp.all.example.com"
    assert db_a["escape_pods"] == 2 and db_a["halon_system_timeout"] == 30  # INI values are literals
    assert db_a["db_port"] == 5432  # group_vars/dbservers (no extension) wins over dbservers.yml
    foo = ini.hosts["foo.example.com"]
    assert foo.vars["http_port"] == 9090  # host_vars/ beats everything
    assert foo.vars["maxRequestsPerChild"] == 808
    assert ini.hosts["bar.example.com"].vars["http_port"] == 443  # group_vars/webservers/: files in order
    assert ini.hosts["bar.example.com"].vars["tls"] is True
    web04 = ini.hosts["web04.example.com"]
    assert web04.vars["release"] == "canary"
    assert "ansible_group_priority" not in ini.hosts["web01.example.com"].vars


def test_ini_connection_variables(ini: Inventory) -> None:
    jumper = ini.hosts["jumper"]
    assert (jumper.address, jumper.port, jumper.user) == ("192.0.2.50", 5555, "deploy")
    foo = ini.hosts["foo.example.com"]
    assert (foo.target, foo.port, foo.key_file) == ("foo.example.com", 2222, f"{HOME}/.ssh/web_ed25519")
    assert ini.hosts["db-b.example.com"].user == "postgres"
    two = ini.hosts["two.example.com"]
    assert (two.become, two.become_user) == (True, "postgres")
    assert ini.hosts["tacoma.example.com"].jump == "bastion@jumper.example.com:22"
    assert ini.hosts["localhost"].connection == "local"
    assert ini.hosts["mail.example.com"].connection == "ssh"


def test_ini_labels_from_watchkeeper_labels(ini: Inventory) -> None:
    assert ini.hosts["web01.example.com"].labels == {"env": "prod"}
    # watchkeeper_labels merge across groups and the host (unlike other dict vars)
    assert ini.hosts["foo.example.com"].labels == {"env": "prod", "role": "frontend"}


# -- Ansible YAML ----------------------------------------------------------------------------------

def test_yaml_inventory(yml: Inventory) -> None:
    assert yml.group_hosts("webservers") == ["web1.example.com", "web2.example.com", "web3.example.com",
                                             "2001:db8::10", "app.example.com"]
    assert yml.groups["dbservers"] == {"db1.example.com", "db2.example.com", "db3.example.com"}
    assert yml.groups["empty_group"] == set()
    v6 = yml.hosts["2001:db8::10"]
    assert (v6.target, v6.port, v6.vars["role"]) == ("2001:db8::10", 2200, "v6")
    app = yml.hosts["app.example.com"]
    assert (app.address, app.port, app.user, app.become) == ("10.0.0.5", 2222, "admin", True)
    assert app.jump == "jumpuser@bastion.example.com:2022"
    assert app.become_password_secret is None and app.vars["ansible_become_password"] == "hunter2"
    # templates in connection variables are rendered with the host's variables
    assert yml.hosts["db1.example.com"].user == "postgres"
    assert yml.hosts["db1.example.com"].vars["ansible_user"] == "{{ db_admin }}"
    assert yml.hosts["db2.example.com"].address == "db2.internal"
    assert yml.hosts["db3.example.com"].groups >= {"replicas", "dbservers", "prod"}
    assert yml.hosts["stage-db.example.com"].connection == "local"
    # group_vars/prod.yml beats the inventory's prod vars
    assert yml.hosts["web1.example.com"].vars["env"] == "production"
    assert yml.hosts["web1.example.com"].labels == {"env": "prod"}


def test_implicit_localhost(yml: Inventory) -> None:
    local = yml.hosts["localhost"]
    assert local.connection == "local" and local.groups == frozenset()
    assert local.user == "admin"  # all's vars apply to the implicit localhost, as in Ansible
    assert local.vars["local_note"] == "from host_vars"
    assert "localhost" not in yml.groups["all"]
    assert yml.select_names("all")[-1] != "localhost"
    assert [h.name for h in yml.select("localhost")] == ["localhost"]
    assert [h.name for h in yml.select("127.0.0.1")] == ["localhost"]


@pytest.mark.parametrize("line", [
    "h1 ansible_host=192.0.2.1 ansible_port=2222 ansible_user=deploy",  # plain: str.split
    "h1\tansible_host=192.0.2.1   ansible_port=2222 ",
    "h1 ansible_host=192.0.2.1 # a comment ansible_port=1",
    "h1 ansible_host=192.0.2.1#notacomment",
    "h1 motd='hello world' ansible_port=2222",
    'h1 motd="a \\"b\\" c" x=1',
    "h1 path=/srv/a\\ b",
    "h1 v=a\xa0b",  # whitespace that str.split splits on and shlex does not
])
def test_ini_host_lines_split_as_shlex_splits_them(tmp_path: Path, line: str) -> None:
    # plain lines take a faster split than shlex; the result must be the same either way
    import shlex

    from watchkeeper.automation._inventory_formats import _ini_value

    (tmp_path / "h.ini").write_text(line + "\n")
    host = load_inventory(tmp_path / "h.ini").hosts["h1"]
    want = {k: _ini_value(v) for k, v in (t.split("=", 1)
                                          for t in shlex.split(line, comments=True)[1:])}
    got = {k: v for k, v in host.vars.items() if k in want}
    assert got == want
    assert host.port == want.get("ansible_port", host.port)


def test_explicit_localhost_stays_local_unless_told(tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text("[here]\nlocalhost\n[there]\nlocalhost ansible_host=10.0.0.1\n")
    inv = load_inventory(tmp_path / "a.ini")
    assert inv.hosts["localhost"].connection == "local"
    assert inv.groups["all"] == {"localhost"}
    (tmp_path / "b.ini").write_text("localhost ansible_connection=ssh ansible_port=2222\n")
    assert load_inventory(tmp_path / "b.ini").hosts["localhost"].connection == "ssh"


# -- watchkeeper YAML --------------------------------------------------------------------------------

def test_watchkeeper_format(wk: Inventory) -> None:
    assert wk.group_hosts("web") == ["web1", "web2", "web3", "web-canary.lan"]
    assert wk.groups["prod"] == {"web1", "web2", "web3", "web-canary.lan", "db1", "db2"}
    web1 = wk.hosts["web1"]
    assert (web1.address, web1.user, web1.port) == ("127.0.0.11", "ops", 22)
    assert web1.labels == {"env": "prod", "tier": "front", "role": "web", "canary": "true"}
    assert web1.vars["http_port"] == 8443  # host_vars/ next to the file, as for Ansible inventories
    assert wk.hosts["web2"].vars["http_port"] == 80
    canary = wk.hosts["web-canary.lan"]
    assert canary.labels == {"env": "staging", "tier": "front"}  # the deeper group wins
    db1 = wk.hosts["db1"]
    assert (db1.user, db1.become, db1.become_user, db1.become_password_secret) == (
        "postgres", True, "postgres", "db-sudo")
    assert db1.jump == "jump@127.0.0.9:2022"  # a jump naming an inventory host resolves to it
    assert db1.labels["tier"] == "1"
    db2 = wk.hosts["db2"]
    assert (db2.port, db2.key_file, db2.become) == (2200, f"{HOME}/.ssh/db_ed25519", True)
    assert db2.vars == {"backup": True}


def test_from_config_section() -> None:
    inv = Inventory.from_config({
        "web1": {"address": "127.0.0.5", "user": "deploy", "groups": ["web"], "labels": {"role": "web"}},
        "web2": {"address": "127.0.0.6", "groups": ["web"]},
    })
    assert [h.name for h in inv.select("web")] == ["web1", "web2"]
    assert inv.hosts["web1"] == Host("web1", address="127.0.0.5", user="deploy",
                                     groups=frozenset({"all", "web"}))
    assert [h.name for h in inv.select("{role=web}")] == ["web1"]
    assert inv.hosts["localhost"].connection == "local"


def test_sources_combine_and_host_lists(tmp_path: Path) -> None:
    d = tmp_path / "inv"
    (d / "group_vars").mkdir(parents=True)
    (d / "01-web.ini").write_text("[web]\nweb1\nweb2\n")
    (d / "02-db.yml").write_text("db:\n  hosts:\n    db1:\n  children:\n    web:\n")
    (d / "README.md").write_text("ignored, as Ansible ignores it\n")
    (d / "group_vars" / "web.yml").write_text("ansible_user: webadmin\n")
    inv = load_inventory([d, "10.1.1.1,other:2222,"],
                         config={"web3": {"groups": ["web"]}})
    assert inv.group_hosts("db") == ["db1", "web1", "web2", "web3"]
    assert inv.hosts["web1"].user == "webadmin"
    assert inv.hosts["web3"].user == "webadmin"
    assert inv.group_hosts("ungrouped") == ["10.1.1.1", "other"]
    assert inv.hosts["other"].port == 2222


def test_host_to_dict(wk: Inventory) -> None:
    assert host_to_dict(wk.hosts["db1"]) == {
        "name": "db1", "address": "127.0.0.21", "port": 22, "user": "postgres", "connection": "ssh",
        "key_file": None, "become": True, "become_user": "postgres", "jump": "jump@127.0.0.9:2022",
        "groups": ["db", "prod"], "labels": {"env": "prod", "role": "db", "tier": "1"},
    }


def test_get_unknown_host(wk: Inventory) -> None:
    with pytest.raises(NotFoundError) as err:
        wk.get("web4")
    assert str(err.value) == "no host named 'web4' in the inventory; did you mean 'web3'?"


# -- errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.ini", "[web]\nweb1\n[web:vrs]\nx=1\n",
     "bad.ini:3: section [web:vrs] has unknown type 'vrs' (use [group], [group:vars] or [group:children])"),
    ("bad.ini", "[web]\nweb1 port 22\n",
     "bad.ini:2: expected key=value host variable after the host name, got 'port'"),
    ("bad.ini", "[web servers]\nweb1\n",
     "bad.ini:1: invalid section '[web servers]': no spaces or other characters are allowed in a section name"),
    ("bad.ini", "[prod:children]\nweb\n[web]\nweb1\n[prod:children]\ndbb\n[db]\ndb1\n",
     "bad.ini:6: section [prod:children] includes undefined group 'dbb'; did you mean 'db'?"),
    ("bad.ini", "[web:vars]\nx=1\n",
     "bad.ini:1: section [web:vars] is for group 'web', which is not defined (add a [web] section)"),
    ("bad.ini", "[web]\nweb[01:100]\n",
     "bad.ini:2: host range [01:100] in 'web[01:100]': begin and end must have the same width when "
     "zero-padded"),
    ("bad.ini", "[web]\nweb1:\n", "bad.ini:2: invalid host pattern 'web1:': ':' at the end is reserved for a port"),
    ("bad.ini", "[web]\nweb1 x='unclosed\n",
     "bad.ini:2: cannot parse host line \"web1 x='unclosed\": No closing quotation"),
    ("bad.yml", "all:\n  children:\n    web:\n      host:\n        web1:\n",
     "bad.yml:4: all.children.web.host: unknown key 'host' in group 'web'; did you mean 'hosts'? "
     "(allowed: hosts, vars, children)"),
    ("bad.yml", "web:\n  hosts:\n    - web1\n",
     "bad.yml:2: web.hosts: hosts of group 'web' must be a mapping, not a list (write `hosts: {name: ...}`)"),
    ("bad.yml", "all:\n  hosts:\n    web1:\n  hosts:\n    web2:\n",
     "bad.yml:4: duplicate key 'hosts' (first on line 2)"),
    ("bad.yml", "all:\n  hosts: [unclosed\n", "bad.yml:3: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("bad.yml", "plugin: aws_ec2\nregions: [eu-west-1]\n",
     "bad.yml:1: plugin: inventory plugin configs (plugin: aws_ec2) are not supported; export the inventory "
     "with `ansible-inventory -i FILE --list -y > hosts.yml`"),
    ("bad.yaml", "hosts:\n  web1:\n    adress: 10.0.0.1\n",
     "bad.yaml:3: hosts.web1.adress: unknown key 'adress'; did you mean 'address'? (allowed: address, port, "
     "user, key, password_secret, connection, become, jump, labels, vars, groups)"),
    ("bad.yaml", "hosts:\n  web1:\n    port: 70000\n",
     "bad.yaml:3: hosts.web1.port: must be a port number 1-65535, not 70000"),
    ("bad.yaml", "hosts:\n  web1: {labels: {bad-name: x}}\n",
     "bad.yaml:2: hosts.web1.labels.bad-name: label name 'bad-name' must match [A-Za-z_][A-Za-z0-9_]*"),
    ("bad.yaml", "groups:\n  web: {children: [wbe]}\n  wbe2: {}\n",
     "bad.yaml:2: groups.web.children: no group named 'wbe'; did you mean 'wbe2'?"),
    ("bad.yaml", "groups:\n  a: {children: [b]}\n  b: {children: [a]}\n",
     "bad.yaml: groups form a loop: a -> b -> a"),
    ("bad.yaml", "hosts:\n  web1:\n    connection: winrm\n",
     "bad.yaml:3: hosts.web1.connection: must be ssh or local, not 'winrm'"),
])
def test_malformed_inventories(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as err:
        load_inventory(tmp_path / name)
    assert str(err.value).replace(str(tmp_path) + "/", "") == message


def test_bad_group_vars_file_points_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts").write_text("[web]\nweb1\n")
    (tmp_path / "group_vars" / "web.yml").write_text("a: 1\nb: [\n")
    with pytest.raises(ConfigError) as err:
        load_inventory(tmp_path / "hosts")
    assert str(err.value) == (f"{tmp_path}/group_vars/web.yml:3: invalid YAML: expected the node content, "
                              "but found '<stream end>'")


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_inventory(tmp_path / "nope.ini")
    assert str(err.value) == (f"{tmp_path}/nope.ini: inventory not found (give a file, a directory, or hosts "
                              "as 'web1,web2,')")


# -- the CLI ------------------------------------------------------------------------------------------

def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(hosts)
    app.command("version")(lambda: None)  # a second command so typer keeps `hosts` as a subcommand
    return app


def test_cli_hosts_json() -> None:
    result = CliRunner().invoke(_app(), ["hosts", "db:&{role=db}", "-i", str(FIX / "watchkeeper" / "inventory.yaml"),
                                         "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["db1", "db2"]
    assert rows[1]["port"] == 2200 and rows[1]["labels"] == {"env": "prod", "role": "db"}


def test_cli_hosts_table() -> None:
    result = CliRunner().invoke(_app(), ["hosts", "webservers:&atlanta,dbservers[0]", "-i",
                                         str(FIX / "ini" / "hosts.ini")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "PORT", "USER", "GROUPS", "LABELS"]
    assert [ln.split()[0] for ln in lines[1:]] == ["web01.example.com", "db-a.example.com"]
    assert lines[1].split() == ["web01.example.com", "web01.example.com", "22", "deploy",
                                "atlanta,prod,southeast,usa,webservers", "env=prod"]


def test_cli_hosts_unknown_group_is_an_input_error() -> None:
    result = CliRunner().invoke(_app(), ["hosts", "webserver", "-i", str(FIX / "ini" / "hosts.ini")])
    assert isinstance(result.exception, InputError)
    assert result.exception.exit_code == 2
    assert result.exception.message == ("no host or group named 'webserver'; did you mean "
                                        "'webservers' or 'dbservers'?")


def test_cli_hosts_from_config(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[web]\nweb1 ansible_host=127.0.0.5\n")
    (tmp_path / "watchkeeper.yaml").write_text(
        "inventory: [inv.ini]\nhosts:\n  db1: {address: 127.0.0.6, groups: [db]}\n")
    result = CliRunner().invoke(_app(), ["hosts", "all", "-c", str(tmp_path / "watchkeeper.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    assert [(r["name"], r["address"]) for r in json.loads(result.stdout)] == [
        ("web1", "127.0.0.5"), ("db1", "127.0.0.6")]
