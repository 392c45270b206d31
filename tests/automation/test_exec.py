"""``watchkeeper exec``: the real command as a subprocess against real sshd servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.automation.sshd import SSHDFleet, free_port

Fleet = Callable[..., SSHDFleet]

# The lead registers exec_ as `watchkeeper exec` in cli/main.py; until then this shim does,
# with the same error handler as main().
_SHIM = """
import sys, typer
from watchkeeper.cli import main as m
if "exec" not in [c.name for c in m.app.registered_commands]:
    from watchkeeper.cli.exec_cmd import exec_
    m.app.command("exec")(exec_)
m.main()
"""
WATCHKEEPER = [sys.executable, "-c", _SHIM]


def _inventory(tmp_path: Path, fleet: SSHDFleet, extra: str = "") -> Path:
    lines = ["[web]"]
    for h in fleet.hosts:
        lines.append(f"{h.name} ansible_host={h.address} ansible_port={h.port} "
                     f"ansible_user={h.user} ansible_ssh_private_key_file={h.key_file}")
    lines.append(extra)
    path = tmp_path / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def _exec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATCHKEEPER, "exec", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={**os.environ, "NO_COLOR": "1"})


def test_exec_json_one_object_per_host_and_exit_status(sshd_hosts: Fleet, tmp_path: Path) -> None:
    fleet = sshd_hosts(3)
    dead_port = free_port("127.0.0.1")
    inv = _inventory(tmp_path, fleet, f"[db]\ndead ansible_host=127.0.0.1 ansible_port={dead_port} "
                     f"ansible_user={fleet.user}")
    ok = _exec("web", "-i", str(inv), "--known-hosts", str(fleet.known_hosts), "--json", "--",
               "echo", "hello", "from", "$(hostname)", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert [d["host"] for d in data] == [h.name for h in fleet.hosts]
    for d in data:
        assert set(d) >= {"host", "status", "exit_code", "stdout", "stderr", "duration_seconds"}
        assert (d["status"], d["exit_code"], d["stderr"]) == ("ok", 0, "")
        assert d["stdout"].startswith("hello from ")
        assert 0 < d["duration_seconds"] < 10
    assert "done 3, failed 0, unreachable 0, timeout 0, remaining 0 of 3" in ok.stderr

    mixed = _exec("all", "-i", str(inv), "--known-hosts", str(fleet.known_hosts), "--json",
                  "--", "test", "-e", "/nonexistent", cwd=tmp_path)
    assert mixed.returncode == 1
    statuses = {d["host"]: (d["status"], d["exit_code"]) for d in json.loads(mixed.stdout)}
    assert statuses == {**{h.name: ("failed", 1) for h in fleet.hosts},
                        "dead": ("unreachable", None)}
    assert "done 0, failed 3, unreachable 1, timeout 0, remaining 0 of 4" in mixed.stderr


def test_exec_table_timeout_and_forks(sshd_hosts: Fleet, tmp_path: Path) -> None:
    fleet = sshd_hosts(4)
    inv = _inventory(tmp_path, fleet)
    t0 = time.monotonic()
    r = _exec("web", "-i", str(inv), "--known-hosts", str(fleet.known_hosts), "--forks", "2",
              "--timeout", "1s", "--", "sleep 0.4; echo slow-done", cwd=tmp_path)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert elapsed > 0.8  # 4 hosts, 2 at a time
    for h in fleet.hosts:
        assert h.name in r.stdout
    assert r.stdout.count("slow-done") == 4 and r.stdout.count(" ok ") == 4
    t = _exec("web", "-i", str(inv), "--known-hosts", str(fleet.known_hosts), "--timeout",
              "0.3s", "--json", "--", "sleep 30", cwd=tmp_path)
    assert t.returncode == 1
    assert {d["status"] for d in json.loads(t.stdout)} == {"timeout"}


def test_exec_unknown_host_key_and_bad_input(sshd_hosts: Fleet, tmp_path: Path) -> None:
    fleet = sshd_hosts(1, known=False)
    inv = _inventory(tmp_path, fleet)
    r = _exec("web", "-i", str(inv), "--known-hosts", str(fleet.known_hosts), "--json", "--",
              "true", cwd=tmp_path)
    assert r.returncode == 1
    [d] = json.loads(r.stdout)
    name = fleet.hosts[0].name
    assert d["status"] == "unreachable"
    assert "unknown host key" in d["error"]
    assert d["error"].endswith(f"hint: run `watchkeeper hosts trust {name}` to accept it "
                               "(or --known-hosts FILE)")
    unknown = _exec("nosuchgroup", "-i", str(inv), "--", "true", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: ") and "nosuchgroup" in unknown.stderr
    bad = _exec("web", "-i", str(inv), "--timeout", "soon", "--", "true", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--timeout 'soon' is not a duration" in bad.stderr


def test_exec_localhost_runs_locally(tmp_path: Path) -> None:
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\n")
    r = _exec("localhost", "-i", str(inv), "--json", "--", "echo", "$$", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [d] = json.loads(r.stdout)
    assert (d["host"], d["status"]) == ("localhost", "ok")


def test_the_cli_does_not_import_asyncssh_before_it_connects() -> None:
    """(How long ``--help`` takes: test_exec_cli_fast.test_help_stays_fast.)"""
    code = ("import sys; from watchkeeper.cli import main, exec_cmd; "
            "print('asyncssh' in sys.modules, 'rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "False"


_COLD = """
import atexit, gc, json, sys
spawned = []
sys.addaudithook(lambda event, args: spawned.append(str(args[0]))
                 if event == "subprocess.Popen" else None)
atexit.register(lambda: sys.stderr.write(json.dumps({
    "spawned": spawned, "gc_enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
    "asyncssh": "asyncssh" in sys.modules, "typer": "typer" in sys.modules}) + "\\n"))
from watchkeeper.cli.main import main
main()
"""


def test_cold_exec_spawns_nothing_and_collects_garbage_again(sshd_hosts: Fleet,
                                                              tmp_path: Path) -> None:
    # the cold path's start-up: no ldconfig/gcc probe while asyncssh loads (see
    # executors/_asyncssh.py), no typer, and the garbage collector, off while modules
    # load, is back on (with the start-up heap frozen) for the fan-out
    fleet = sshd_hosts(2)
    inv = _inventory(tmp_path, fleet)
    r = subprocess.run([sys.executable, "-c", _COLD, "exec", "web", "-i", str(inv),
                        "--known-hosts", str(fleet.known_hosts), "--json", "--", "true"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [d["status"] for d in json.loads(r.stdout)] == ["ok", "ok"]
    state = json.loads(r.stderr.strip().splitlines()[-1])
    assert state == {"spawned": [], "gc_enabled": True, "frozen": state["frozen"],
                     "asyncssh": True, "typer": False}
    assert state["frozen"] > 10000


def test_exec_forms_typer_parses_keep_the_garbage_collector_on() -> None:
    import gc

    from watchkeeper.cli.main import _fast_path

    frozen = gc.get_freeze_count()
    assert _fast_path(["exec", "--help"]) is None  # no `--`: typer's to parse
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
