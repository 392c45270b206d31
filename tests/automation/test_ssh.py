"""SSHExecutor against real OpenSSH servers on loopback (tests/automation/sshd.py)."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.automation.sshd import SSHDFleet, free_port, keygen
from watchkeeper.automation.adhoc import run_adhoc
from watchkeeper.automation.command import Command, Quoted, Raw
from watchkeeper.automation.executors.ssh import SSHExecutor, parse_jump, trust_host
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.secrets import SecretStore
from watchkeeper.errors import InputError

Fleet = Callable[..., SSHDFleet]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_run_captures_streams_exit_code_env_and_stdin(sshd_hosts: Fleet) -> None:
    fleet = sshd_hosts(1)
    host = fleet.hosts[0]
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        r = await ex.run(host, Command.shell('echo "$WHO"; echo warn >&2; cat; exit 3'),
                         env={"WHO": "a b'c"}, stdin=b"piped\n")
        assert (r.status, r.exit_code, r.stdout, r.stderr) == ("failed", 3, "a b'c\npiped\n", "warn\n")
        ok = await ex.run(host, Command.of("printf", "%s", "x; rm -rf /"))
        assert (ok.status, ok.exit_code, ok.stdout) == ("ok", 0, "x; rm -rf /")
    finally:
        await ex.close()


async def test_one_pooled_connection_serves_many_commands(sshd_hosts: Fleet) -> None:
    fleet = sshd_hosts(1)
    server, host = fleet.servers[0], fleet.hosts[0]
    before = server.accepted()
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        results = [await ex.run(host, Command.of("echo", str(i))) for i in range(10)]
        results += await asyncio.gather(*[ex.run(host, Command.shell("sleep 0.1")) for _ in range(15)])
        assert all(r.ok for r in results), [r for r in results if not r.ok]
        assert [r.stdout for r in results[:3]] == ["0\n", "1\n", "2\n"]
    finally:
        await ex.close()
    assert ex.pool.opened == 1
    assert server.accepted() - before == 1, server.log()


async def test_timeout_kills_the_remote_process_group(sshd_hosts: Fleet, tmp_path: Path) -> None:
    fleet = sshd_hosts(1)
    marker = tmp_path / "remote.pid"
    cmd = Command([Raw("sleep 60 & echo $! > "), Quoted(str(marker)), Raw("; wait; echo never")])
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        t0 = time.monotonic()
        r = await ex.run(fleet.hosts[0], cmd, timeout=0.5)
        assert time.monotonic() - t0 < 5
        assert (r.status, r.exit_code, r.stdout) == ("timeout", None, "")
        assert "did not finish within 0.5s and was killed" in (r.error or "")
        pid = int(marker.read_text())
        for _ in range(100):
            if not _alive(pid):
                break
            await asyncio.sleep(0.02)
        assert not _alive(pid), "remote process survived the timeout"
        again = await ex.run(fleet.hosts[0], Command.shell("echo still usable"))
        assert again.stdout == "still usable\n"
    finally:
        await ex.close()


async def test_output_cap_and_streaming(sshd_hosts: Fleet) -> None:
    fleet = sshd_hosts(1)
    chunks: list[tuple[str, str, str]] = []
    ex = SSHExecutor(known_hosts=fleet.known_hosts, output_cap=4096)
    try:
        r = await ex.run(fleet.hosts[0],
                         Command.shell("echo first; seq 1 20000; echo last >&2"),
                         on_output=lambda h, s, t: chunks.append((h, s, t)))
    finally:
        await ex.close()
    assert r.ok and r.truncated
    assert r.stdout.startswith("first\n1\n2\n") and r.stdout.endswith("19999\n20000\n")
    assert "bytes truncated by watchkeeper" in r.stdout
    assert len(r.stdout) < 4200
    streamed = "".join(t for _, s, t in chunks if s == "stdout")
    assert streamed.count("\n") == 20001  # streaming sees everything, before the cap
    assert {h for h, _, _ in chunks} == {fleet.hosts[0].name}
    assert [t for _, s, t in chunks if s == "stderr"] == ["last\n"]


async def test_put_over_ssh(sshd_hosts: Fleet, tmp_path: Path) -> None:
    fleet = sshd_hosts(1)
    target = tmp_path / "deployed.txt"
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        r = await ex.put(fleet.hosts[0], b"\x00binary\xffdata", str(target), mode=0o600)
    finally:
        await ex.close()
    assert r.ok, r
    assert target.read_bytes() == b"\x00binary\xffdata"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


async def test_unknown_host_key_names_the_host_and_how_to_trust_it(sshd_hosts: Fleet) -> None:
    fleet = sshd_hosts(1, known=False, prefix="web")
    host = fleet.hosts[0]
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        r = await ex.run(host, Command.shell("true"))
        assert r.status == "unreachable"
        assert r.error == (
            f"{host.name} ({host.address}:{host.port}): unknown host key: {fleet.known_hosts} has "
            f"no key for [{host.address}]:{host.port}\n"
            f"  hint: run `watchkeeper hosts trust {host.name}` to accept it (or --known-hosts FILE)")
        fingerprint = await trust_host(host, fleet.known_hosts)
        assert fingerprint.startswith("SHA256:")
        assert fleet.servers[0].host_key_line() in fleet.known_hosts.read_text()
        ex.reload_known_hosts()
        assert (await ex.run(host, Command.shell("true"))).ok
    finally:
        await ex.close()


async def test_changed_host_key_is_refused(sshd_hosts: Fleet, tmp_path: Path) -> None:
    fleet = sshd_hosts(1, fresh_host_key=True)
    host = fleet.hosts[0]
    other = keygen(tmp_path / "other_host_key")
    pub = Path(str(other) + ".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{host.address}]:{host.port} {pub[0]} {pub[1]}\n")
    ex = SSHExecutor(known_hosts=known)
    try:
        r = await ex.run(host, Command.shell("true"))
    finally:
        await ex.close()
    assert r.status == "unreachable"
    assert r.error is not None
    assert r.error.startswith(f"{host.name} ({host.address}:{host.port}): host key changed: "
                              f"the key it presented does not match {known}")
    assert f"run `watchkeeper hosts trust {host.name}` to accept it (replaces the old key)" in r.error
    # trusting replaces the old line rather than adding a second one
    await trust_host(host, known)
    assert known.read_text().count(f"[{host.address}]:{host.port} ") == 1


async def test_host_key_checking_cannot_be_switched_off_by_accident() -> None:
    with pytest.raises(InputError, match="would turn host key checking off"):
        SSHExecutor(known_hosts="ignore")


async def test_unreachable_and_wrong_key_never_block_the_others(sshd_hosts: Fleet,
                                                                tmp_path: Path) -> None:
    fleet = sshd_hosts(2)
    wrong_key = keygen(tmp_path / "wrong")
    dead = Host(name="dead", address="127.0.0.1", port=free_port("127.0.0.1"), user=fleet.user,
                key_file=str(fleet.client_key))
    badkey = replace(fleet.hosts[1], name="badkey", key_file=str(wrong_key))
    hosts = [fleet.hosts[0], dead, badkey]
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        t0 = time.monotonic()
        results = await run_adhoc(hosts, Command.shell("echo hi"), ex, timeout=10)
        assert time.monotonic() - t0 < 5
    finally:
        await ex.close()
    by = {r.host: r for r in results}
    assert by[fleet.hosts[0].name].stdout == "hi\n"
    assert by["dead"].status == "unreachable"
    assert by["dead"].error == (f"dead (127.0.0.1:{dead.port}): connection refused "
                                "(is sshd running on that port?)")
    assert by["badkey"].status == "unreachable"
    assert by["badkey"].error is not None
    assert by["badkey"].error.startswith(f"badkey ({badkey.address}:{badkey.port}): "
                                         f"authentication failed as {fleet.user}")


async def test_maxstartups_refusals_are_retried_with_backoff(sshd_hosts: Fleet) -> None:
    fleet = sshd_hosts(1, extra_config="MaxStartups 2:100:2")
    base = fleet.hosts[0]
    hosts = [replace(base, name=f"conn{i}") for i in range(20)]  # 20 names: 20 connections
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        results = await asyncio.gather(*[ex.run(h, Command.shell("echo ok")) for h in hosts])
    finally:
        await ex.close()
    assert [r.status for r in results] == ["ok"] * 20, [r.error for r in results]
    assert ex.connect_attempts > 20
    assert "past MaxStartups" in fleet.servers[0].log()


async def test_jump_host(sshd_hosts: Fleet) -> None:
    jump_fleet = sshd_hosts(1, extra_config="LogLevel DEBUG1", prefix="bastion")
    target_fleet = sshd_hosts(1, prefix="inner")
    jump = jump_fleet.servers[0]
    known = target_fleet.known_hosts
    known.write_text(known.read_text() + jump.host_key_line() + "\n")
    host = replace(target_fleet.hosts[0], jump=f"{jump_fleet.user}@{jump.address}:{jump.port}")
    assert parse_jump(host.jump or "", host).target == jump.address
    ex = SSHExecutor(known_hosts=known)
    try:
        r = await ex.run(host, Command.shell("echo through"))
        r2 = await ex.run(host, Command.shell("echo again"))
    finally:
        await ex.close()
    assert (r.stdout, r2.stdout) == ("through\n", "again\n")
    inner = target_fleet.servers[0]
    assert "direct-tcpip" in jump.log() and f"{inner.address}" in jump.log()
    assert (jump.accepted(), inner.accepted()) == (1, 1), jump.log()


async def test_jump_host_unknown_key_names_the_jump(sshd_hosts: Fleet) -> None:
    jump_fleet = sshd_hosts(1, prefix="bastion")
    target_fleet = sshd_hosts(1, prefix="inner")
    jump = jump_fleet.servers[0]
    host = replace(target_fleet.hosts[0], jump=f"{jump.address}:{jump.port}")
    ex = SSHExecutor(known_hosts=target_fleet.known_hosts)
    try:
        r = await ex.run(host, Command.shell("true"))
    finally:
        await ex.close()
    assert r.status == "unreachable"
    assert r.error is not None
    assert r.error.startswith(f"{host.name} ({host.address}:{host.port}): via jump host "
                              f"{jump.address}:{jump.port}: {jump.address}:{jump.port} "
                              f"({jump.address}:{jump.port}): unknown host key")


async def test_become_with_password_from_the_secret_store(
        sshd_hosts: Fleet, sudo_user: tuple[str, str], tmp_path: Path) -> None:
    user, password = sudo_user
    fleet = sshd_hosts(1, user=user)
    store = SecretStore(tmp_path / "data")
    store.set("wk-sudo", password)
    host = replace(fleet.hosts[0], become=True, become_password_secret="wk-sudo")
    ex = SSHExecutor(known_hosts=fleet.known_hosts, secrets=store)
    try:
        plain = await ex.run(replace(host, become=False), Command.shell("id -un"))
        assert plain.stdout == f"{user}\n", plain
        r = await ex.run(host, Command.shell("id -un; cat"), stdin=b"data for root\n")
        assert (r.status, r.stdout, r.stderr) == ("ok", "root\ndata for root\n", ""), r
        target = tmp_path / "root-owned.conf"
        put = await ex.put(host, b"x=1\n", str(target), mode=0o640)
        assert put.ok, put
        assert target.stat().st_uid == 0 and target.read_bytes() == b"x=1\n"
        store.set("wk-sudo", "wrong password")
        bad = await ex.run(host, Command.shell("id -un"))
        assert bad.status == "failed"
        assert bad.error == f"sudo on {host.name} rejected the become password for root"
        assert password not in repr(bad) and "wrong password" not in repr(bad)
    finally:
        await ex.close()
    assert password not in fleet.servers[0].log()


async def test_become_without_a_password_says_so(sshd_hosts: Fleet,
                                                 sudo_user: tuple[str, str]) -> None:
    user, _ = sudo_user
    fleet = sshd_hosts(1, user=user)
    host = replace(fleet.hosts[0], become=True)
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        r = await ex.run(host, Command.shell("id -un"), timeout=10)
    finally:
        await ex.close()
    assert r.status == "failed"
    assert r.error is not None and r.error.startswith(
        f"sudo on {host.name} asks for a password to become root and the host has no become password")


async def test_connections_use_the_preferred_algorithms(sshd_hosts: Fleet) -> None:
    # the ed25519 host key, AES-GCM (one OpenSSL call per packet in asyncssh), no
    # compression: the cheapest handshake and packets for both ends
    fleet = sshd_hosts(1)
    host = fleet.hosts[0]
    ex = SSHExecutor(known_hosts=fleet.known_hosts)
    try:
        assert (await ex.run(host, Command.of("true"))).ok
        conn = (await ex.connection(host)).conn
        assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert conn.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"
        assert conn.get_extra_info("send_compression") == "none"
        assert conn.get_server_host_key().algorithm == b"ssh-ed25519"
    finally:
        await ex.close()
