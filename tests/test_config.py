"""Loading ``watchkeeper.yaml``: valid files, includes, ``${ENV}``, and every error with its place.

Errors are asserted in full, as a user reads them: ``FILE:LINE: KEY.PATH: what is wrong``.
Tests that build a file run in ``tmp_path`` (chdir) so that paths print as the user typed them.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from watchkeeper.config import default_config, load_config
from watchkeeper.errors import ConfigError, ConfigIssue
from watchkeeper.monitor.checks import check_types

FIXTURES = Path(__file__).parent / "fixtures" / "config"
def _keys(model: type) -> str:
    return ", ".join(sorted(model.model_fields))  # type: ignore[attr-defined]


def _file_model() -> type:
    from watchkeeper.monitor.checks.file import Config

    return Config


def _top_model() -> type:
    from watchkeeper.config.models import config_model

    return config_model()  # type: ignore[no-any-return]


def _server_model() -> type:
    from watchkeeper.config.models import ServerConfig

    return ServerConfig


FILE_KEYS = _keys(_file_model())
TOP_KEYS = _keys(_top_model())
SERVER_KEYS = _keys(_server_model())


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(name: str, text: str) -> str:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return name


def errors_of(path: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    assert all(isinstance(i, ConfigIssue) for i in info.value.issues)
    assert str(info.value) == "\n".join(str(i) for i in info.value.issues)
    return [str(i) for i in info.value.issues]


def load(text: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_config(write("watchkeeper.yaml", text), environ=environ or {}).config


# -- valid files --------------------------------------------------------------------------


def test_full_fixture_is_valid() -> None:
    loaded = load_config(FIXTURES / "full.yaml", environ={"BACKUP_DIR": "/data/backup"})
    cfg = loaded.config
    assert loaded.files == (FIXTURES / "full.yaml",)
    assert loaded.path == FIXTURES / "full.yaml"
    assert cfg.server.listen == "[::1]:9470"
    assert cfg.server.token == "0123456789abcdef0123"  # the ${WK_TOKEN:-...} default
    assert cfg.server.max_concurrent_checks == 20
    assert cfg.storage.data_dir == "/var/lib/watchkeeper"
    r = cfg.storage.retention
    assert (r.raw, r.minute, r.hour) == (2 * 86400.0, 30 * 86400.0, 365 * 86400.0)
    assert (cfg.storage.head_window, cfg.storage.compact_interval) == (1800.0, 60.0)
    host = cfg.collectors.host
    assert (host.enabled, host.interval, host.top_processes, host.mount_timeout) == (
        True,
        10.0,
        3,
        0.5,
    )
    assert host.fs_types_exclude == "^(tmpfs|overlay)$"
    assert [c.name for c in cfg.checks] == ["hostname", "backup-fresh", "no-core-dumps"]
    backup = cfg.check("backup-fresh")
    assert backup.type == "file"
    assert backup.path == "/data/backup/latest.tar"
    assert (backup.interval, backup.timeout, backup.jitter, backup.retry_interval) == (
        300.0,
        2.0,
        30.0,
        60.0,
    )
    assert (backup.max_attempts, backup.max_age, backup.min_size, backup.max_size) == (
        3,
        86400.0,
        1024**2,
        10 * 1000**3,
    )
    assert (backup.flapping.window, backup.flapping.low, backup.flapping.high) == (10, 0.1, 0.5)
    assert backup.labels == {"team": "ops", "cost": "$0"}  # $$ is a literal $
    assert cfg.check("no-core-dumps").exists is False
    assert cfg.check("no-core-dumps").enabled is False
    with pytest.raises(KeyError):
        cfg.check("nope")


def test_check_defaults(workdir: Path) -> None:
    cfg = load("""
        checks:
          - name: h
            type: file
            path: /etc/hostname
        """)
    c = cfg.checks[0]
    assert (c.interval, c.timeout, c.jitter, c.retry_interval, c.max_attempts, c.enabled) == (
        30.0,
        10.0,
        None,
        None,
        1,
        True,
    )
    assert (c.flapping.window, c.flapping.low, c.flapping.high) == (21, 0.2, 0.3)
    assert c.labels == {}


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "~\n", "null\n"])
def test_empty_file_is_valid_and_gives_the_defaults(workdir: Path, text: str) -> None:
    cfg = load(text)
    default = default_config().config
    assert cfg == default
    assert cfg.server.listen == "127.0.0.1:8470"
    assert cfg.checks == []
    assert cfg.collectors.host.enabled is True


def test_default_config_has_no_files() -> None:
    loaded = default_config()
    assert (loaded.files, loaded.path) == ((), None)
    assert loaded.config.server.token is None


def test_config_is_frozen(workdir: Path) -> None:
    cfg = load("server:\n  listen: 127.0.0.1:1\n")
    with pytest.raises(ValueError, match="frozen"):
        cfg.server.listen = "127.0.0.1:2"


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1:8470", "0.0.0.0:80", "[::1]:9000", "[::]:1", "localhost:65535", "10.1.2.3:1"],
)
def test_valid_listen_addresses(workdir: Path, listen: str) -> None:
    assert load(f'server:\n  listen: "{listen}"\n').server.listen == listen


# -- includes -----------------------------------------------------------------------------


def test_includes_merge_lists_and_mappings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "includes")
    loaded = load_config("watchkeeper.yaml", environ={})
    cfg = loaded.config
    # the glob matches in sorted order; notes.txt does not match *.yaml
    assert loaded.files == (
        Path("watchkeeper.yaml"),
        Path("conf.d/10-web.yaml"),
        Path("conf.d/20-db.yaml"),
    )
    assert [c.name for c in cfg.checks] == ["main-hostname", "web-index", "web-log", "db-socket"]
    assert cfg.server.listen == "127.0.0.1:9471"  # only the include sets it
    assert cfg.storage.retention.raw == 86400.0  # mappings merge key by key
    assert cfg.storage.retention.minute == 90 * 86400.0  # untouched keys keep the default
    assert cfg.check("web-log").max_age == 600.0


def test_errors_in_included_files_name_that_file_and_continue_the_indexes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(FIXTURES / "include_errors")
    assert errors_of("watchkeeper.yaml") == [
        'conf.d/a.yaml:8: checks[2].interval: "0s" must be at least 1s',
        (
            f"conf.d/b.yaml:6: checks[3].max_agee: unknown key 'max_agee'; did you mean 'max_age'? "
            f"(allowed: {FILE_KEYS})"
        ),
    ]


def test_include_paths_are_relative_to_the_main_file(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "includes", tmp_path / "etc")
    loaded = load_config(tmp_path / "etc" / "watchkeeper.yaml", environ={})
    assert len(loaded.config.checks) == 4
    assert loaded.files[1] == tmp_path / "etc" / "conf.d" / "10-web.yaml"


def test_a_single_include_may_be_a_string(workdir: Path) -> None:
    write("extra.yaml", "checks:\n  - {name: x, type: file, path: /x}\n")
    cfg = load("include: extra.yaml\n")
    assert [c.name for c in cfg.checks] == ["x"]
    assert cfg.include == ["extra.yaml"]


def test_an_absolute_include(workdir: Path) -> None:
    write("elsewhere/x.yaml", "checks:\n  - {name: x, type: file, path: /x}\n")
    cfg = load(f"include:\n  - {workdir / 'elsewhere'}/*.yaml\n")
    assert [c.name for c in cfg.checks] == ["x"]


def test_a_glob_matching_nothing_is_fine(workdir: Path) -> None:
    assert load("include:\n  - conf.d/*.yaml\n").checks == []


def test_a_missing_plain_include_is_an_error(workdir: Path) -> None:
    write(
        "watchkeeper.yaml",
        """
        server:
          listen: 127.0.0.1:1
        include:
          - conf.d/*.yaml
          - local.yaml
        """,
    )
    assert errors_of("watchkeeper.yaml") == [
        "watchkeeper.yaml:5: include[1]: 'local.yaml': no such file"
    ]


def test_a_scalar_given_twice_names_both_places(workdir: Path) -> None:
    write(
        "conf.d/web.yaml",
        """
        # the web team's settings
        server:
          listen: 127.0.0.1:9001
        """,
    )
    write(
        "watchkeeper.yaml",
        """
        include: [conf.d/*.yaml]
        server:
          listen: 127.0.0.1:9000
        """,
    )
    assert errors_of("watchkeeper.yaml") == [
        "conf.d/web.yaml:3: server.listen: already set in watchkeeper.yaml:3; a value may be given once"
    ]


def test_a_list_where_the_main_file_has_a_list_is_named(workdir: Path) -> None:
    write("conf.d/web.yaml", "checks:\n  name: web\n")
    write(
        "watchkeeper.yaml",
        """
        include: [conf.d/*.yaml]
        checks:
          - {name: a, type: file, path: /a}
        """,
    )
    assert errors_of("watchkeeper.yaml") == [
        "conf.d/web.yaml:1: checks: must be a list, as in watchkeeper.yaml:2"
    ]


def test_nested_includes_are_refused(workdir: Path) -> None:
    write("a.yaml", "include:\n  - b.yaml\n")
    write("b.yaml", "{}\n")
    write("watchkeeper.yaml", "include:\n  - a.yaml\n")
    assert errors_of("watchkeeper.yaml") == [
        "a.yaml:1: include: included files may not include others; list every glob in the main file"
    ]


def test_an_include_of_the_main_file_itself_is_ignored(workdir: Path) -> None:
    cfg = load("include: ['*.yaml']\nchecks:\n  - {name: a, type: file, path: /a}\n")
    assert [c.name for c in cfg.checks] == ["a"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("- 1\n", "extra.yaml:1: an included file must be a mapping of sections"),
        (
            "checks: [\n",
            "extra.yaml:2: invalid YAML: expected the node content, but found '<stream end>'",
        ),
        (
            "server:\n  token: ${NOPE}\n",
            (
                "extra.yaml:2: server.token: environment variable NOPE is not set "
                "(set it, or give a default as ${NOPE:-value})"
            ),
        ),
    ],
)
def test_problems_inside_an_included_file(workdir: Path, extra: str, message: str) -> None:
    write("extra.yaml", extra)
    write("watchkeeper.yaml", "include: [extra.yaml]\n")
    assert errors_of("watchkeeper.yaml") == [message]


def test_a_duplicate_check_name_across_files(workdir: Path) -> None:
    write(
        "conf.d/x.yaml",
        """
        checks:
          - name: web
            type: file
            path: /b
        """,
    )
    write(
        "watchkeeper.yaml",
        """
        include: [conf.d/*.yaml]
        checks:
          - name: web
            type: file
            path: /a
        """,
    )
    assert errors_of("watchkeeper.yaml") == [
        "conf.d/x.yaml:2: checks[1].name: duplicate check name 'web' (also checks[0])"
    ]


# -- ${ENV} substitution ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${DIR}/x", {"DIR": "/srv"}, "/srv/x"),
        ("${DIR:-/opt}/x", {}, "/opt/x"),
        ("${DIR:-/opt}/x", {"DIR": "/srv"}, "/srv/x"),
        ("${DIR:-/opt}/x", {"DIR": ""}, "/opt/x"),  # set but empty takes the default, as in sh
        ("${DIR:-}/x", {}, "/x"),
        ("${A}${B}", {"A": "/a", "B": "/b"}, "/a/b"),
        ("/cost/$$5", {}, "/cost/$5"),
        ("/$${DIR}", {"DIR": "/srv"}, "/${DIR}"),  # $$ escapes a whole reference
        ("/a$b", {}, "/a$b"),  # a lone $ is kept
        ("${DIR}", {"DIR": "${OTHER}"}, "${OTHER}"),  # values are not expanded again
    ],
)
def test_environment_substitution(
    workdir: Path, value: str, environ: dict[str, str], expected: str
) -> None:
    cfg = load(f"checks:\n  - name: a\n    type: file\n    path: '{value}'\n", environ)
    assert cfg.checks[0].path == expected


def test_substitution_feeds_typed_values(workdir: Path) -> None:
    cfg = load(
        """
        checks:
          - name: a
            type: file
            path: /a
            interval: ${IVL}
            max_attempts: ${TRIES:-3}
        """,
        {"IVL": "5m"},
    )
    assert (cfg.checks[0].interval, cfg.checks[0].max_attempts) == (300.0, 3)


def test_substitution_uses_the_process_environment_by_default(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_PATH", "/from/env")
    write("watchkeeper.yaml", "checks:\n  - {name: a, type: file, path: '${WK_TEST_PATH}'}\n")
    assert load_config("watchkeeper.yaml").config.checks[0].path == "/from/env"


def test_missing_variables_are_each_reported(workdir: Path) -> None:
    write(
        "watchkeeper.yaml",
        """
        server:
          token: ${API_TOKEN}
        checks:
          - name: a
            type: file
            path: ${DATA}/${FILE}
        """,
    )
    assert errors_of("watchkeeper.yaml", {"FILE": "f"}) == [
        (
            "watchkeeper.yaml:2: server.token: environment variable API_TOKEN is not set "
            "(set it, or give a default as ${API_TOKEN:-value})"
        ),
        (
            "watchkeeper.yaml:6: checks[0].path: environment variable DATA is not set "
            "(set it, or give a default as ${DATA:-value})"
        ),
    ]


# -- errors, each with file:line, key path and what is allowed ---------------------------

CASES = [
    pytest.param(
        """
        checks:
          - name: a
            type: file
            path: /a
            interval: 0s
        """,
        ['watchkeeper.yaml:5: checks[0].interval: "0s" must be at least 1s'],
        id="interval-below-minimum",
    ),
    pytest.param(
        """
        checks:
          - name: a
            type: file
            path: /a
          - name: b
            type: file
            path: /b
          - name: c
            type: file
            path: /c
            interval: soon
        """,
        [
            (
                'watchkeeper.yaml:11: checks[2].interval: "soon" is not a duration; use forms like 500ms, '
                "30s, 5m, 1h30m, 7d"
            )
        ],
        id="interval-not-a-duration",
    ),
    pytest.param(
        """
        checks:
          - name: a
            type: file
            path: /a
            max_size: huge
        """,
        [
            'watchkeeper.yaml:5: checks[0].max_size: "huge" is not a size; use forms like 512, 10MB, 1GiB'
        ],
        id="size",
    ),
    pytest.param(
        """
        checks:
          - name: a
            type: file
            path: /a
            intervall: 5s
        """,
        [
            (
                f"watchkeeper.yaml:5: checks[0].intervall: unknown key 'intervall'; did you mean "
                f"'interval'? (allowed: {FILE_KEYS})"
            )
        ],
        id="unknown-check-key",
    ),
    pytest.param(
        """
        checks:
          - name: a
            type: file
            path: /a
            flapping:
              windw: 5
        """,
        [
            (
                "watchkeeper.yaml:6: checks[0].flapping.windw: unknown key 'windw'; did you mean 'window'? "
                "(allowed: high, low, window)"
            )
        ],
        id="unknown-nested-key",
    ),
    pytest.param(
        """
        servre:
          listen: 127.0.0.1:1
        """,
        [
            (
                "watchkeeper.yaml:1: servre: unknown key 'servre'; did you mean 'server'? "
                f"(allowed: {TOP_KEYS})"
            )
        ],
        id="unknown-section",
    ),
    pytest.param(
        """
        server:
          lisen: 127.0.0.1:1
        """,
        [
            (
                "watchkeeper.yaml:2: server.lisen: unknown key 'lisen'; did you mean 'listen'? "
                f"(allowed: {SERVER_KEYS})"
            )
        ],
        id="unknown-server-key",
    ),
    pytest.param(
        """
        collectors:
          host:
            zzz: 1
        """,
        [
            (
                "watchkeeper.yaml:3: collectors.host.zzz: unknown key 'zzz' (allowed: enabled, "
                "fs_types_exclude, interval, mount_points_exclude, mount_timeout, top_processes)"
            )
        ],
        id="unknown-key-without-a-close-match",
    ),
    pytest.param(
        """
        checks:
          - name: a
            type: file
        """,
        ["watchkeeper.yaml:2: checks[0].path: required key is missing"],
        id="missing-required-key",
    ),
    pytest.param(
        """
        checks:
          - name: a
            type: file
            path: /a
            max_attempts: 0
        """,
        [
            "watchkeeper.yaml:5: checks[0].max_attempts: 0: Input should be greater than or equal to 1"
        ],
        id="number-below-minimum",
    ),
    pytest.param(
        """
        checks:
          - name: a
            type: file
            path: /a
          - name: a
            type: file
            path: /b
        """,
        ["watchkeeper.yaml:5: checks[1].name: duplicate check name 'a' (also checks[0])"],
        id="duplicate-check-name",
    ),
    pytest.param(
        """
        checks:
          - name: slow
            type: file
            path: /a
            interval: 10s
            timeout: 20s
        """,
        ["watchkeeper.yaml:6: checks[0].timeout: 20s must not exceed the interval (10s)"],
        id="timeout-over-interval",
    ),
    pytest.param(
        """
        storage:
          retention:
            raw: 30d
            minute: 7d
        """,
        [
            (
                "watchkeeper.yaml:2: storage.retention: minute (7d) must be at least raw (30d): coarser "
                "tiers keep data longer"
            )
        ],
        id="retention-order",
    ),
    pytest.param(
        """
        storage:
          retention:
            minute: 1y
            hour: 30d
        """,
        [
            (
                "watchkeeper.yaml:2: storage.retention: hour (30d) must be at least minute (365d): coarser "
                "tiers keep data longer"
            )
        ],
        id="retention-order-hour",
    ),
    pytest.param(
        """
        storage:
          head_window: 10s
        """,
        ['watchkeeper.yaml:2: storage.head_window: "10s" must be at least 1m'],
        id="head-window",
    ),
    pytest.param(
        """
        server:
          listen: example.com:80
        """,
        [
            (
                'watchkeeper.yaml:2: server.listen: "example.com:80": the host must be an IP address or '
                "localhost"
            )
        ],
        id="listen-hostname",
    ),
    pytest.param(
        """
        server:
          listen: "127.0.0.1"
        """,
        [
            (
                'watchkeeper.yaml:2: server.listen: "127.0.0.1" is not HOST:PORT (e.g. 127.0.0.1:8470 or '
                "[::1]:8470)"
            )
        ],
        id="listen-no-port",
    ),
    pytest.param(
        """
        server:
          listen: "127.0.0.1:70000"
        """,
        [
            (
                'watchkeeper.yaml:2: server.listen: "127.0.0.1:70000" is not HOST:PORT (e.g. '
                "127.0.0.1:8470 or [::1]:8470)"
            )
        ],
        id="listen-port-range",
    ),
    pytest.param(
        """
        server:
          listen: ":8470"
        """,
        [
            (
                'watchkeeper.yaml:2: server.listen: ":8470" has no host; use 127.0.0.1:PORT, or '
                "0.0.0.0:PORT to listen on all"
            )
        ],
        id="listen-no-host",
    ),
    pytest.param(
        """
        server:
          token: short
        """,
        ["watchkeeper.yaml:2: server.token: 'short': String should have at least 16 characters"],
        id="short-token",
    ),
    pytest.param(
        """
        server:
          listen: 127.0.0.1:1
          listen: 127.0.0.1:2
        """,
        ["watchkeeper.yaml:3: server.listen: duplicate key 'listen' (first given on line 2)"],
        id="duplicate-key",
    ),
    pytest.param(
        """
        checks: []
        server: {}
        checks: []
        """,
        ["watchkeeper.yaml:3: checks: duplicate key 'checks' (first given on line 1)"],
        id="duplicate-section",
    ),
    pytest.param(
        """
        server:
          listen: [127.0.0.1
        """,
        ["watchkeeper.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'"],
        id="yaml-unclosed-flow",
    ),
    pytest.param(
        """
        server:
          listen: 127.0.0.1:1
         token: x
        """,
        [
            "watchkeeper.yaml:3: invalid YAML: expected <block end>, but found '<block mapping start>'"
        ],
        id="yaml-bad-indent",
    ),
    pytest.param(
        "server:\n\t listen: 127.0.0.1:1\n",
        ["watchkeeper.yaml:2: invalid YAML: found character '\\t' that cannot start any token"],
        id="yaml-tab",
    ),
    pytest.param(
        """
        base: &b {listen: 127.0.0.1:1}
        server:
          <<: *b
        """,
        [
            "watchkeeper.yaml:3: server: YAML merge keys (<<) are not supported; repeat the keys",
        ],
        id="merge-key",
    ),
    pytest.param(
        """
        - server
        - checks
        """,
        [
            (
                "watchkeeper.yaml:1: the top level must be a mapping of sections (server, storage, "
                "collectors, checks, include)"
            )
        ],
        id="top-level-list",
    ),
    pytest.param(
        "just text\n",
        [
            (
                "watchkeeper.yaml:1: the top level must be a mapping of sections (server, storage, "
                "collectors, checks, include)"
            )
        ],
        id="top-level-scalar",
    ),
    pytest.param(
        "checks:\n  name: a\n",
        ["watchkeeper.yaml:1: checks: must be a list, not a mapping"],
        id="checks-not-a-list",
    ),
    pytest.param(
        "checks: all of them\n",
        ["watchkeeper.yaml:1: checks: must be a list, not the text 'all of them'"],
        id="checks-text",
    ),
    pytest.param(
        "server: 5\n",
        ["watchkeeper.yaml:1: server: must be a mapping of keys, not the number 5"],
        id="section-not-a-mapping",
    ),
    pytest.param(
        "checks:\n  - {name: a, type: file, path: /a, flapping: true}\n  -\n",
        [
            "watchkeeper.yaml:2: checks[0].flapping: must be a mapping of keys, not the boolean true",
            "watchkeeper.yaml:3: checks[1]: must be a mapping of keys, not empty",
        ],
        id="item-not-a-mapping",
    ),
    pytest.param(
        "collectors:\n  host: [a]\n",
        ["watchkeeper.yaml:2: collectors.host: must be a mapping of keys, not a list"],
        id="nested-section-not-a-mapping",
    ),
    pytest.param(
        """
        include: 5
        """,
        ["watchkeeper.yaml:1: include: must be a list of file globs"],
        id="include-not-a-list",
    ),
    pytest.param(
        """
        checks:
          - name: a
            path: /a
        """,
        [
            f"watchkeeper.yaml:2: checks[0]: missing 'type' (one of: {', '.join(sorted(check_types()))})"
        ],
        id="missing-type",
    ),
    pytest.param(
        """
        server:
          listen: 127.0.0.1:1
          bogus: 1
        storage:
          head_window: 1s
        checks:
          - name: a
            type: file
            path: /a
            interval: 0s
        """,
        [
            (
                f"watchkeeper.yaml:3: server.bogus: unknown key 'bogus' (allowed: {SERVER_KEYS})"
            ),
            'watchkeeper.yaml:5: storage.head_window: "1s" must be at least 1m',
            'watchkeeper.yaml:10: checks[0].interval: "0s" must be at least 1s',
        ],
        id="every-problem-at-once",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_config_errors(workdir: Path, text: str, expected: list[str]) -> None:
    write("watchkeeper.yaml", text)
    assert errors_of("watchkeeper.yaml") == expected


def test_unknown_check_type_suggests_the_closest(workdir: Path) -> None:
    write(
        "watchkeeper.yaml",
        """
        checks:
          - name: a
            type: file
            path: /a
          - name: b
            type: fiel
            path: /b
        """,
    )
    allowed = ", ".join(sorted(check_types()))
    assert "file" in check_types()
    assert errors_of("watchkeeper.yaml") == [
        (
            f"watchkeeper.yaml:6: checks[1].type: unknown check type 'fiel'; did you mean 'file'? "
            f"(allowed: {allowed})"
        )
    ]


def test_unknown_check_type_without_a_close_match(workdir: Path) -> None:
    write("watchkeeper.yaml", "checks:\n  - {name: a, type: zzzzzz, path: /a}\n")
    allowed = ", ".join(sorted(check_types()))
    assert errors_of("watchkeeper.yaml") == [
        f"watchkeeper.yaml:2: checks[0].type: unknown check type 'zzzzzz' (allowed: {allowed})"
    ]


def test_a_missing_file(workdir: Path) -> None:
    assert errors_of("nope.yaml") == ["nope.yaml: file not found"]


def test_a_file_that_is_not_utf8(workdir: Path) -> None:
    Path("watchkeeper.yaml").write_bytes(b"server:\n  token: \xff\xfe\n")
    (message,) = errors_of("watchkeeper.yaml")
    assert message.startswith("watchkeeper.yaml: cannot read: 'utf-8' codec can't decode byte 0xff")


def test_an_absolute_path_is_named_as_given(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("server:\n  lisen: x\n")
    assert errors_of(str(path)) == [
        (
            f"{path}:2: server.lisen: unknown key 'lisen'; did you mean 'listen'? "
            f"(allowed: {SERVER_KEYS})"
        )
    ]
