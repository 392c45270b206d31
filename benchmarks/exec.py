"""Ad-hoc fan-out, cold: ``watchkeeper exec`` vs ``ansible -m raw`` vs ``pyinfra exec``.

Starts N real sshd (default 50 and 100) on 127.0.0.10.. (one address and port each,
tests/automation/sshd.py), then in one run times ``true`` on every host with:

* ``watchkeeper exec all -- true`` (the real CLI as a subprocess, cold: new process,
  new connections);
* ``ansible all -m raw -a true --forks N`` (ansible-core, OpenSSH client; a fresh
  ControlPath dir so no master connection is reused);
* ``pyinfra INV exec -- true`` with ``--parallel N``;
* a bare asyncssh loop in a subprocess (the floor: connect + run, nothing else);

then, warm, against a running ``watchkeeper up`` whose pool already holds a connection
per host: ``watchkeeper exec all --server URL --json -- true`` (the CLI, a new process
each time; goal >= 20x Ansible) and the same POST /api/v1/exec made from this process
(the server's part alone).

Each is run ROUNDS times; wall time is the median, CPU (user+sys of the process tree)
and peak memory (sum of RSS over the process tree, sampled every 20 ms) are of the
median run (the servers' CPU is not counted: it is the same work for every tool, and
most of the wall time on 2 cores). Host keys are checked by all four (a generated
known_hosts file). Loopback only; every sshd is stopped by PID.

watchkeeper's own modules are byte-compiled first, as installing a wheel does (the
tree is an editable install, and PYTHONDONTWRITEBYTECODE would otherwise make every
cold run compile them from source again); Ansible, pyinfra and asyncssh are installed
packages and have their bytecode already.

    .venv/bin/python benchmarks/exec.py [--hosts 50 100] [--rounds 1]

Needs the ``bench`` extra (ansible-core, pyinfra) and Debian openssh-server/-client.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.automation.sshd import SSHDFactory, SSHDFleet  # noqa: E402

BIN = Path(sys.executable).parent

BARE = """
import asyncio, sys, asyncssh
hosts = [l.split() for l in open(sys.argv[1]).read().splitlines()]
async def one(addr, port, user, key, known):
    async with asyncssh.connect(addr, int(port), username=user, client_keys=[key],
                                known_hosts=known) as c:
        r = await c.run("true")
        return r.exit_status
async def main():
    rs = await asyncio.gather(*[one(*h) for h in hosts])
    assert all(r == 0 for r in rs), rs
asyncio.run(main())
"""


def compile_watchkeeper() -> None:
    """Write bytecode for src/watchkeeper (into its gitignored __pycache__ dirs)."""
    import compileall

    if not compileall.compile_dir(str(ROOT / "src" / "watchkeeper"), quiet=1):
        raise SystemExit("byte-compiling src/watchkeeper failed")


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}):\n{out.decode()[-2000:]}\n"
                         f"{err.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "mem": peak / 2**20}


def write_inventories(fleet: SSHDFleet, d: Path) -> dict[str, Path]:
    key, kh = fleet.client_key, fleet.known_hosts
    ini = ["[all]"] + [f"{h.name} ansible_host={h.address} ansible_port={h.port} "
                       f"ansible_user={h.user} ansible_ssh_private_key_file={key}"
                       for h in fleet.hosts]
    (d / "hosts.ini").write_text("\n".join(ini) + "\n")
    (d / "ansible.cfg").write_text(
        "[defaults]\nhost_key_checking = True\ninterpreter_python = auto_silent\n"
        "[ssh_connection]\n"
        f"ssh_common_args = -o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes\n")
    py = ["hosts = ["] + [
        f"    ({h.address!r}, {{'ssh_port': {h.port}, 'ssh_user': {h.user!r}, "
        f"'ssh_key': {str(key)!r}, 'ssh_known_hosts_file': {str(kh)!r}, "
        "'ssh_strict_host_key_checking': 'yes'}),"
        for h in fleet.hosts] + ["]"]
    (d / "pyinfra_inv.py").write_text("\n".join(py) + "\n")
    (d / "bare.txt").write_text("\n".join(f"{h.address} {h.port} {h.user} {key} {kh}"
                                          for h in fleet.hosts) + "\n")
    return {"ini": d / "hosts.ini", "py": d / "pyinfra_inv.py", "bare": d / "bare.txt"}


def measure_warm(fleet: SSHDFleet, inv: dict[str, Path], work: Path, env: dict[str, str],
                 n: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    """``watchkeeper exec all --server URL -- true`` against a running server whose pool
    already holds a connection per host (one warm-up call first). The CLI is a new process
    each time, as a person would run it; the server's CPU is not counted."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "bench-token-0123456789abcdef"
    cfg = work / "watchkeeper.yaml"
    cfg.write_text(f"""
server: {{listen: "127.0.0.1:{port}", token: {token}}}
collectors: {{host: {{enabled: false}}}}
inventory: ["{inv['ini']}"]
ssh: {{known_hosts: "{fleet.known_hosts}", forks: {n}}}
""")
    proc = subprocess.Popen([str(BIN / "watchkeeper"), "up", "--config", str(cfg), "--data-dir",
                             str(work / "data")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                print("  (the server did not start: warm path not measured)")
                return {}
            time.sleep(0.1)
        warmup = httpx.post(f"{base}/api/v1/exec", json={"pattern": "all", "command": "true",
                                                          "forks": n},
                            headers={"Authorization": f"Bearer {token}"}, timeout=120)
        if warmup.status_code != 200 or not all(r["status"] == "ok"
                                                 for r in warmup.json()["results"]):
            print(f"  (warm-up failed: {warmup.text[:200]})")
            return {}
        argv = [str(BIN / "watchkeeper"), "exec", "all", "--server", base, "--json", "--", "true"]
        runs = [measure(argv, {**env, "WATCHKEEPER_TOKEN": token}, work) for _ in range(rounds)]
        # the same request without the command line's own start-up (what a script or the
        # console pays): one HTTP round trip to the server's warm pool
        http_runs = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            r = httpx.post(f"{base}/api/v1/exec", json={"pattern": "all", "command": "true",
                                                        "forks": n},
                           headers={"Authorization": f"Bearer {token}"}, timeout=120)
            wall = time.perf_counter() - t0
            if r.status_code == 200:
                http_runs.append({"wall": wall, "cpu": 0.0, "mem": 0.0})
        out = {"watchkeeper warm": runs}
        if http_runs:
            out["wk warm HTTP"] = http_runs
        return out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


BENCH_USER = "wkbench"


def bench_user() -> str:
    """A login user whose shell is plain /bin/sh, so every tool pays sshd's cost, not a
    developer's .bashrc (bash sources it for commands run over ssh; with pyenv in it that
    is ~90 ms of CPU per command, which would dwarf what is being compared)."""
    import pwd

    try:
        pwd.getpwnam(BENCH_USER)
    except KeyError:
        if os.geteuid() != 0:
            return os.environ.get("USER", "root")
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", BENCH_USER], check=True)
        # no password, but not locked: sshd without PAM refuses keys for locked accounts
        subprocess.run(["usermod", "-p", "*", BENCH_USER], check=True)
    return BENCH_USER


def run_size(factory: SSHDFactory, n: int, rounds: int) -> None:
    fleet = factory.start(n, prefix="b", user=bench_user())
    work = Path(tempfile.mkdtemp(prefix="wk-bench-exec-"))
    try:
        inv = write_inventories(fleet, work)
        env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_CONFIG": str(work / "ansible.cfg")}
        tools = {
            "watchkeeper": [str(BIN / "watchkeeper"), "exec", "all", "-i", str(inv["ini"]),
                            "--known-hosts", str(fleet.known_hosts), "--forks", str(n), "--json",
                            "--", "true"],
            "ansible": [str(BIN / "ansible"), "all", "-m", "raw", "-a", "true", "--forks",
                        str(n), "-i", str(inv["ini"])],
            "pyinfra": [str(BIN / "pyinfra"), str(inv["py"]), "exec", "--parallel", str(n),
                        "-y", "--", "true"],
            "asyncssh floor": [sys.executable, "-c", BARE, str(inv["bare"])],
        }
        results: dict[str, list[dict[str, float]]] = {k: [] for k in tools}
        for _ in range(rounds):
            for name, argv in tools.items():
                cp = work / "cp"
                shutil.rmtree(cp, ignore_errors=True)
                cp.mkdir()
                results[name].append(measure(argv, {**env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp)},
                                             work))
        warm = measure_warm(fleet, inv, work, env, n, rounds)
        if warm:
            results.update(warm)
        med: dict[str, dict[str, float]] = {}
        for name, runs in results.items():
            runs.sort(key=lambda r: r["wall"])
            med[name] = runs[len(runs) // 2]
        print(f"\n{n} hosts (sshd on 127.0.0.10..), `true` on each, median of {rounds}, cold:")
        print(f"  {'tool':<16}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}")
        for name, m in med.items():
            print(f"  {name:<16}{m['wall']:>9.2f}{m['cpu']:>9.2f}{m['mem']:>10.0f}")
        wk = med["watchkeeper"]
        if "watchkeeper warm" in med:
            w = med["watchkeeper warm"]
            print(f"  ansible/watchkeeper warm (CLI --server, through `watchkeeper up`): wall "
                  f"{med['ansible']['wall'] / w['wall']:.1f}x (goal >= 20x)")
        if "wk warm HTTP" in med:
            print(f"  ansible/watchkeeper warm (HTTP request only): wall "
                  f"{med['ansible']['wall'] / med['wk warm HTTP']['wall']:.1f}x (goal >= 20x)")
        for other in ("ansible", "pyinfra"):
            o = med[other]
            print(f"  {other}/watchkeeper: wall {o['wall'] / wk['wall']:.1f}x, "
                  f"cpu {o['cpu'] / max(wk['cpu'], 1e-9):.1f}x, mem {o['mem'] / wk['mem']:.1f}x")
        floor = med["asyncssh floor"]
        print(f"  watchkeeper/floor: wall {wk['wall'] / floor['wall']:.2f}x, "
              f"cpu {wk['cpu'] / max(floor['cpu'], 1e-9):.2f}x")
        print("  spread (min..max wall): " + ", ".join(
                  f"{k} {min(r['wall'] for r in v):.2f}..{max(r['wall'] for r in v):.2f}"
                  for k, v in results.items()))
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    for tool in ("ansible", "pyinfra", "watchkeeper"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} missing: pip install -e '.[bench]'")
    compile_watchkeeper()
    factory = SSHDFactory.create()
    try:
        for n in args.hosts:
            run_size(factory, n, args.rounds)
    finally:
        factory.close()
    print(f"\nstatistics: {statistics.__name__} median; goals: ansible/watchkeeper >= 5x, "
          "pyinfra/watchkeeper > 1x")


if __name__ == "__main__":
    main()
