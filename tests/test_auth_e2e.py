"""Named API tokens end to end: a real ``watchkeeper up`` (tests/e2e_helpers.config_server)
on a real SQLite data dir, the ``watchkeeper tokens`` CLI against it and against the data
dir, and approvals decided by the roles of the token that decides."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_helpers import WATCHKEEPER, config_server, free_port, wait_for
from watchkeeper.automation.runs import RunStore
from watchkeeper.server import read_or_create_token
from watchkeeper.store.engine import open_engine


def wk(*args: str, token: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WATCHKEEPER_TOKEN"}
    if token is not None:
        env["WATCHKEEPER_TOKEN"] = token
    return subprocess.run([*WATCHKEEPER, *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "gated.yaml").write_text(textwrap.dedent(f"""
        name: gated
        targets: localhost
        steps:
          - name: ask
            approval: {{role: approver, message: "restart it", timeout: 2m}}
          - name: act
            run: touch {tmp_path / "acted"}
    """))
    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text("runbooks: runbooks\ncollectors: {host: {enabled: false}}\n")
    return cfg, tmp_path / "data"


def _events(base: str, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = httpx.get(f"{base}/api/v1/events",
                                          params={"kind": kind}).json()["events"]
    return out


def test_tokens_roles_and_approvals_against_a_running_server(tmp_path: Path) -> None:
    cfg, data = _setup(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with config_server(cfg, data, port):
        token_file = data / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        main = token_file.read_text().strip()

        # made through the server with the main token, and directly on the data dir
        made = wk("tokens", "create", "bob", "--role", "dev", "--server", base, token=main)
        assert made.returncode == 0, made.stderr
        bob = made.stdout.strip()
        assert bob.startswith("wk_") and made.stdout == bob + "\n"
        assert "shown only now" in made.stderr and f"export WATCHKEEPER_TOKEN={bob}" in made.stderr
        made = wk("tokens", "create", "carol", "--role", "approver", "--role", "ops",
                  "--expires", "90d", "--data-dir", str(data), "--config", str(cfg), "--json")
        assert made.returncode == 0, made.stderr
        carol_info = json.loads(made.stdout)
        carol = carol_info.pop("token")
        assert (carol_info["name"], carol_info["roles"], carol_info["state"]) == (
            "carol", ["approver", "ops"], "active")
        assert carol_info["created_by"].startswith("local:")

        listed = wk("tokens", "list", "--json", "--server", base, token=main)
        assert listed.returncode == 0, listed.stderr
        assert [(t["name"], t["roles"], t["created_by"]) for t in json.loads(listed.stdout)] == [
            ("bob", ["dev"], "admin"), ("carol", ["approver", "ops"], carol_info["created_by"])]
        table = wk("tokens", "list", "--data-dir", str(data), "--config", str(cfg))
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[0].split() == ["ID", "NAME", "ROLES", "STATE",
                                                        "CREATED", "BY", "EXPIRES", "LAST", "USED"]
        assert "approver,ops" in table.stdout
        for out in (listed.stdout, listed.stderr, table.stdout):
            assert bob not in out and carol not in out

        # token management is for admins; a token without the role is told what it lacks
        r = httpx.get(f"{base}/api/v1/tokens", headers=bearer(bob))
        assert r.status_code == 403
        assert r.json()["error"] == "managing API tokens needs the role 'admin'; bob has dev"
        denied = wk("tokens", "list", "--server", base, token=bob)
        assert denied.returncode == 2 and "needs the role 'admin'" in denied.stderr

        # who starts a run is the token's name, not what the body says
        r = httpx.post(f"{base}/api/v1/runs", json={"runbook": "gated", "started_by": "mallory"},
                       headers=bearer(bob))
        assert r.status_code == 400 and "'bob'" in r.json()["error"]
        r = httpx.post(f"{base}/api/v1/runs", json={"runbook": "gated"}, headers=bearer(bob))
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        wait_for(lambda: httpx.get(f"{base}/api/v1/runs/{run_id}").json()["status"]
                 == "awaiting_approval", what="the approval wait")
        assert httpx.get(f"{base}/api/v1/runs/{run_id}").json()["started_by"] == "bob"

        # bob lacks the role: 403 naming the role needed and bob's roles
        r = httpx.post(f"{base}/api/v1/runs/{run_id}/approve", json={}, headers=bearer(bob))
        assert r.status_code == 403
        assert r.json() == {"error": f"run {run_id}: step 'ask' needs the role 'approver' to "
                                     "approve; bob has dev", "type": "ForbiddenError"}
        # nobody claims roles or another name in the body, not even the main token
        for body in ({"roles": ["approver"]}, {"by": "someone-else"}):
            for tok in (bob, carol, main):
                r = httpx.post(f"{base}/api/v1/runs/{run_id}/approve", json=body,
                               headers=bearer(tok))
                assert r.status_code == 400, (body, r.text)
        cli = wk("approve", run_id[:8], "--server", base, "--role", "approver", token=bob)
        assert cli.returncode == 2 and "roles are those of their API token" in cli.stderr
        # carol has it: approved through the CLI with --token, and the run goes on
        cli = wk("approve", run_id[:8], "--server", base, "--token", carol, "-m", "go")
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout == f"run {run_id} (gated): approved\n"
        done = wait_for(lambda: (r := httpx.get(f"{base}/api/v1/runs/{run_id}").json())[
            "status"] in ("ok", "failed") and r, what="the run to finish")
        assert done["status"] == "ok" and (tmp_path / "acted").exists()
        (ask,) = [s for s in done["steps"] if s["step"] == "ask"]
        decision = json.loads(ask["detail"])
        assert (decision["decision"], decision["by"], decision["comment"], decision["role"]) == (
            "approved", "carol", "go", "approver")
        (approved,) = _events(base, "run.approved")
        assert (approved["actor"], approved["subject"], approved["data"]["role"]) == (
            "carol", f"run:{run_id}", "approver")
        assert _events(base, "run.started")[-1]["actor"] == "bob"

        # silences keep Alertmanager's createdBy; the event log has the token's name too
        silence = {"matchers": [{"name": "alertname", "value": "X", "isRegex": False}],
                   "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
                   "createdBy": "someone@example.org", "comment": "maintenance"}
        r = httpx.post(f"{base}/api/v2/silences", json=silence, headers=bearer(carol))
        assert r.status_code == 200, r.text
        (created,) = _events(base, "silence.created")
        assert (created["actor"], created["data"]["created_by"], created["data"]["identity"]) == (
            "someone@example.org", "someone@example.org", "carol")
        r = httpx.delete(f"{base}/api/v2/silence/{r.json()['silenceID']}", headers=bearer(bob))
        assert r.status_code == 200
        (expired,) = _events(base, "silence.expired")
        assert (expired["actor"], expired["data"]["identity"]) == ("bob", "bob")

        # revoked by name through the server: refused at once, and told why
        revoked = wk("tokens", "revoke", "bob", "--server", base, token=main)
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout.startswith("revoked token ") and "(bob)" in revoked.stdout
        r = httpx.post(f"{base}/api/v1/runs", json={"runbook": "gated"}, headers=bearer(bob))
        assert r.status_code == 401 and "(bob) was revoked at" in r.json()["error"]
        # revoked by id on the data dir, while the server runs
        revoked = wk("tokens", "revoke", str(carol_info["id"]), "--data-dir", str(data),
                     "--config", str(cfg))
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout == f"revoked token {carol_info['id']} (carol)\n"
        r = httpx.post(f"{base}/api/v1/runs", json={"runbook": "gated"}, headers=bearer(carol))
        assert r.status_code == 401 and "(carol) was revoked at" in r.json()["error"]
        assert [e["actor"] for e in _events(base, "token.revoked")] == [
            "admin", carol_info["created_by"]]
        listed = json.loads(wk("tokens", "list", "--json", "--server", base, token=main).stdout)
        assert [(t["name"], t["state"], t["last_used_at"] is not None) for t in listed] == [
            ("bob", "revoked", True), ("carol", "revoked", True)]

    # never the tokens themselves, anywhere in the database's files
    raw = b"".join(p.read_bytes() for p in data.glob("watchkeeper.db*"))
    assert raw and bob.encode() not in raw and carol.encode() not in raw


def test_approve_on_the_data_dir_needs_a_token_too(tmp_path: Path) -> None:
    cfg, data = _setup(tmp_path)
    engine = open_engine(None, data)
    try:
        store = RunStore(engine)
        runs = []
        for _ in range(2):
            run_id = store.create("gated", trigger="cli", started_by="ops", params={},
                                  targets=["localhost"])
            store.set_status(run_id, "running")
            store.request_approval(run_id, "ask", role="approver", message="", timeout=600)
            runs.append(run_id)
    finally:
        engine.dispose()
    where = ("--data-dir", str(data), "--config", str(cfg))

    r = wk("approve", runs[0], *where)  # no token anywhere
    assert r.returncode == 2
    assert r.stderr.startswith("error: approving or rejecting needs an API token: the decider's "
                               "name and roles are the token's")
    r = wk("approve", runs[0], *where, "--token", "guessed")
    assert r.returncode == 2 and "no named token there matches it" in r.stderr
    r = wk("approve", runs[0], *where, "--as", "root")
    assert r.returncode == 2 and "--as is gone" in r.stderr

    # the data dir's token file (0600: only the server's user reads it) is admin
    read_or_create_token(data, None)
    r = wk("approve", runs[0], *where, "-m", "as the server's user")
    assert r.returncode == 0, r.stderr
    r = wk("tokens", "create", "dave", "--role", "viewer", *where)
    dave = r.stdout.strip()
    r = wk("reject", runs[1], *where, token=dave)
    assert r.returncode == 2
    assert f"run {runs[1]}: step 'ask' needs the role 'approver' to reject; dave has viewer" \
        in r.stderr
    engine = open_engine(None, data)
    try:
        store = RunStore(engine)
        (ask,) = [s for s in store.get(runs[0]).steps if s.step == "ask"]
        assert json.loads(ask.detail)["by"] == "admin"
        assert store.status(runs[1]) == "awaiting_approval"
    finally:
        engine.dispose()


@pytest.mark.parametrize("args", [["tokens", "create", "admin"], ["tokens", "create", "x y"],
                                  ["tokens", "create", "eve", "--role", "*"],
                                  ["tokens", "create", "eve", "--expires", "soon"],
                                  ["tokens", "revoke", "nobody"], ["tokens", "revoke", "12"]])
def test_tokens_cli_refuses_bad_input(tmp_path: Path, args: list[str]) -> None:
    r = wk(*args, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stdout == "", r.stderr
