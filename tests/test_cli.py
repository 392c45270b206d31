"""The command line: ``watchkeeper config check`` (in-process and as the real console script),
the top-level error handling and exit codes, and ``parse_when``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchkeeper.cli.common import parse_when
from watchkeeper.cli.main import app
from watchkeeper.config.models import ServerConfig
from watchkeeper.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
WATCHKEEPER = Path(sys.executable).parent / "watchkeeper"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as a user or a CI job would."""
    assert WATCHKEEPER.exists(), f"{WATCHKEEPER} is missing: install the package (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [str(WATCHKEEPER), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    (tmp_path / "watchkeeper.yaml").write_text(
        "server:\n"
        "  lisen: 127.0.0.1:1\n"
        "checks:\n"
        "  - name: a\n"
        "    type: file\n"
        "    path: /a\n"
        "    interval: 0s\n"
    )
    return tmp_path


BROKEN_STDERR = (
    "watchkeeper.yaml:2: server.lisen: unknown key 'lisen'; did you mean 'listen'? "
    f"(allowed: {', '.join(sorted(ServerConfig.model_fields))})\n"
    'watchkeeper.yaml:7: checks[0].interval: "0s" must be at least 1s\n'
    "2 errors in watchkeeper.yaml\n"
)


# -- config check, as the real console script --------------------------------------------


def test_config_check_valid_exits_0(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "includes", tmp_path / "cfg")
    proc = run_cli("config", "check", "watchkeeper.yaml", cwd=tmp_path / "cfg")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        "watchkeeper.yaml: valid (3 files, 4 checks, 0 rules)\n",
        "",
    )


def test_config_check_defaults_to_watchkeeper_yaml_in_the_current_dir(tmp_path: Path) -> None:
    (tmp_path / "watchkeeper.yaml").write_text("checks:\n  - {name: a, type: file, path: /a}\n")
    proc = run_cli("config", "check", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "watchkeeper.yaml: valid (1 file, 1 check, 0 rules)\n")


def test_config_check_invalid_exits_2_with_every_error_on_stderr(broken: Path) -> None:
    proc = run_cli("config", "check", "watchkeeper.yaml", cwd=broken)
    assert proc.stdout == ""
    assert proc.stderr == BROKEN_STDERR
    assert proc.returncode == 2


def test_config_check_missing_file_exits_2(tmp_path: Path) -> None:
    proc = run_cli("config", "check", "nope.yaml", cwd=tmp_path)
    assert proc.stderr == "nope.yaml: file not found\n1 error in nope.yaml\n"
    assert proc.returncode == 2


def test_config_check_errors_in_includes(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "include_errors", tmp_path / "cfg")
    proc = run_cli("config", "check", "watchkeeper.yaml", cwd=tmp_path / "cfg")
    lines = proc.stderr.splitlines()
    assert lines[0] == 'conf.d/a.yaml:8: checks[2].interval: "0s" must be at least 1s'
    assert lines[1].startswith(
        "conf.d/b.yaml:6: checks[3].max_agee: unknown key 'max_agee'; did you mean 'max_age'?"
    )
    assert lines[2:] == ["2 errors in watchkeeper.yaml"]
    assert proc.returncode == 2


# -- config check, in process -------------------------------------------------------------


def test_config_check_in_process(broken: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(broken)
    result = CliRunner().invoke(app, ["config", "check", "watchkeeper.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == BROKEN_STDERR
    (broken / "watchkeeper.yaml").write_text("checks: []\n")
    result = CliRunner().invoke(app, ["config", "check", "watchkeeper.yaml"])
    assert (result.exit_code, result.stdout) == (0, "watchkeeper.yaml: valid (1 file, 0 checks, 0 rules)\n")


# -- the entry point: usage errors, help, version -----------------------------------------


def test_help_and_version(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "config" in proc.stdout and "log" in proc.stdout
    proc = run_cli("version", cwd=tmp_path)
    from watchkeeper import __version__

    assert (proc.returncode, proc.stdout) == (0, f"{__version__}\n")


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("frobnicate", cwd=tmp_path)
    assert proc.returncode == 2
    assert "No such command 'frobnicate'" in proc.stderr


def test_watchkeeper_errors_are_rendered_without_a_traceback(tmp_path: Path) -> None:
    """A bad --config for a command that loads it: one line on stderr, the class's exit code."""
    (tmp_path / "bad.yaml").write_text("server:\n  lisen: x\n")
    proc = run_cli("log", "--config", "bad.yaml", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: bad.yaml:2: server.lisen: unknown key 'lisen'")
    assert "Traceback" not in proc.stderr


# -- parse_when ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, NOW),
        ("", NOW),
        ("now", NOW),
        (" now ", NOW),
        ("-1h", NOW - 3600),
        ("+5m", NOW + 300),
        ("-1h30m", NOW - 5400),
        ("now-30m", NOW - 1800),
        ("now+1d", NOW + 86400),
        ("now-90", NOW - 90),  # after "now" a bare number is relative seconds
        ("-500ms", NOW - 0.5),
        ("1700000000", 1_700_000_000.0),
        ("1699990000.5", 1_699_990_000.5),
        ("-100", -100.0),  # a bare signed number is Unix seconds
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:20.250Z", NOW + 0.25),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14T17:13:20-05:00", NOW),
    ],
)
def test_parse_when(text: str | None, expected: float) -> None:
    assert parse_when(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "junk",
        "now-junk",
        "now-",
        "-",
        "+",
        "nowish",
        "yesterday",
        "-1x",
        "2023-13-45T00:00:00Z",
        "now 5m",
    ],
)
def test_parse_when_rejects_junk(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_when(text, NOW)
    assert str(info.value) == f"{text!r} is not a time; use now, -1h, Unix seconds or RFC 3339"
    assert info.value.exit_code == 2


def test_parse_when_defaults_to_the_real_clock() -> None:
    import time

    before = time.time()
    assert before - 1 <= parse_when("now") <= time.time() + 1
    assert parse_when("-1h") == pytest.approx(time.time() - 3600, abs=5)


def test_config_check_reports_rule_file_errors_with_their_column(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]) +\n")
    (tmp_path / "rules" / "good.yaml").write_text(
        "groups:\n  - name: h\n    rules:\n      - record: r:x\n        expr: sum(x)\n")
    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text('rules: ["rules/*.yaml", "builtin:nope"]\n')
    proc = subprocess.run([str(WATCHKEEPER), "config", "check", str(cfg)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0] == (f"{tmp_path / 'rules' / 'bad.yaml'}:5: groups[0].rules[0].expr: "
                        "unexpected end of input at column 14")
    assert lines[1].startswith("<config>: rules: unknown built-in rule group 'nope'")
    assert lines[-1] == f"2 errors in the rule files of {cfg}"
