"""Runbook files: the model, file:line errors, typed params, the library, and sandboxed templates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watchkeeper.automation.command import Masked, Quoted, Raw
from watchkeeper.automation.runbook import (
    ParamError,
    RunbookLibrary,
    Strategy,
    load_runbook,
    masked_params,
    validate_params,
)
from watchkeeper.automation.templates import (
    SecretValue,
    TemplateError,
    evaluate,
    render_command,
    render_text,
)
from watchkeeper.errors import ConfigError, NotFoundError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "runbooks"


def write(tmp_path: Path, text: str, name: str = "rb.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def issues(tmp_path: Path, text: str) -> list[str]:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_runbook(p)
    return [str(i).replace(str(tmp_path) + "/", "") for i in err.value.issues]


def test_the_issue_example_loads(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, """
        name: restart-service
        description: Restart a systemd service and check it came back
        params:
          service: {type: string, required: true}
        targets: web
        strategy: {rolling: {batch: 1}}
        steps:
          - name: restart
            run: systemctl restart {{ params.service }}
          - name: verify
            run: systemctl is-active {{ params.service }}
            retries: 3
            delay: 2s
        on_failure:
          - name: report
            run: journalctl -u {{ params.service }} -n 50 --no-pager
    """))
    assert rb.name == "restart-service" and rb.targets == "web"
    assert rb.strategy == Strategy(kind="rolling", batch=1, max_fail_percentage=0)
    assert [s.kind for s in rb.steps] == ["run", "run"]
    assert rb.steps[1].retries == 3 and rb.steps[1].delay == 2.0
    assert rb.on_failure[0].name == "report"
    assert rb.path == tmp_path / "rb.yaml"


def test_errors_name_file_line_and_key_path(tmp_path: Path) -> None:
    assert issues(tmp_path, """
        name: bad
        params:
          service: {type: strin, required: true}
          n: {type: int, default: abc}
          env: {type: choice}
        strategy: {rolling: {batc: 1}}
        steps:
          - name: restart
            run: echo hi
            retries: x
          - name: two
            run: a
            http: b
          - name: three
            copy: {dest: /x, content: y, mdoe: "0644"}
          - nme: four
            run: b
    """) == [
        "rb.yaml:3: params.service.type: 'strin' is not a parameter type "
        "(allowed: string, int, bool, choice, hosts)",
        "rb.yaml:4: params.n.default: 'abc' is not a whole number",
        "rb.yaml:5: params.env.choices: a choice parameter needs a list of choices",
        "rb.yaml:6: strategy.batc: unknown key 'batc'; did you mean 'batch'? "
        "(allowed: batch, max_fail_percentage)",
        "rb.yaml:10: steps[0].retries: 'x': Input should be a valid integer, unable to parse "
        "string as an integer",
        "rb.yaml:11: steps[1]: step 'two' has more than one step kind (run, http); give exactly "
        "one of run, script, copy, http, wait, check, approval, runbook",
        "rb.yaml:15: steps[2].copy.mdoe: unknown key 'mdoe'; did you mean 'mode'? "
        "(allowed: content, dest, diff, group, mode, owner, src, template)",
        "rb.yaml:16: steps[3].name: required key is missing",
        "rb.yaml:16: steps[3].nme: unknown key 'nme'; did you mean 'name'? (allowed: approval, "
        "changed_when, check, copy, delay, failed_when, http, ignore_errors, name, register, "
        "retries, run, runbook, script, timeout, wait, when)",
    ]


def test_template_and_reference_errors_are_load_errors(tmp_path: Path) -> None:
    assert issues(tmp_path, """
        name: bad-templates
        steps:
          - name: a
            run: echo {{ params.x
          - name: b
            run: echo ok
            when: params.x ==
          - name: c
            copy: {dest: /etc/x, template: missing.j2}
          - name: a
            run: again
    """) == ["rb.yaml:10: steps[3].name: duplicate step name 'a' (also steps[0])"]
    assert issues(tmp_path, """
        name: bad-templates
        steps:
          - name: a
            run: echo {{ params.x
          - name: b
            run: echo ok
            when: params.x ==
          - name: c
            copy: {dest: /etc/x, template: missing.j2}
    """) == [
        "rb.yaml:4: steps[0].run: template error: unexpected end of template, expected "
        "'end of print statement'.",
        "rb.yaml:7: steps[1].when: template error: unexpected 'end of template'",
        "rb.yaml:9: steps[2].copy.template: 'missing.j2': no such file (looked in missing.j2)",
    ]


@pytest.mark.parametrize("text, message", [
    ("", "rb.yaml:1: name: required key is missing\nrb.yaml:1: steps: required key is missing"),
    ("name: x\nsteps: [{name: c, copy: {dest: /x, content: y, mode: 0640}}]\n",
     "rb.yaml:2: steps[0].copy.mode: 416: write file modes in quotes, like '0640' (YAML reads an "
     "unquoted 0640 as the number 416)"),
    ("name: [unclosed\n", "rb.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("- a\n- b\n", "rb.yaml:1: a runbook must be a mapping with name, params, targets and steps"),
    ("name: x\nsteps: []\n", "rb.yaml:2: steps: List should have at least 1 item after "
                             "validation, not 0"),
    ("name: x y\nsteps: [{name: a, run: b}]\n",
     "rb.yaml:1: name: 'x y' is not a runbook name; use letters, digits, '-', '_' and '.'"),
    ("name: x\nsteps: [{name: a, run: b}]\nstrategy: {rolling: {batch: 0%}}\n",
     "rb.yaml:3: strategy.batch: batch '0%' must be a number of hosts or a percentage like 25%"),
    ("name: x\nsteps: [{name: a, run: b, delay: soon}]\n",
     'rb.yaml:2: steps[0].delay: "soon" is not a duration; use forms like 500ms, 30s, 5m, 1h30m, 7d'),
    ("name: x\nsteps: [{name: a, wait: {tcp: 80, duration: 5s}}]\n",
     "rb.yaml:2: steps[0].wait: give exactly one of tcp, http, check or duration"),
])
def test_more_load_errors(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "rb.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_runbook(p)
    assert str(err.value).replace(str(tmp_path) + "/", "") == message


def test_dollar_signs_stay_as_written(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, """
        name: shell
        steps: [{name: a, run: "echo $$ ${HOME} $((1+1))"}]
    """))
    assert rb.steps[0].run == "echo $$ ${HOME} $((1+1))"


def test_step_shorthands(tmp_path: Path) -> None:
    (tmp_path / "s.sh").write_text("echo hi\n")
    rb = load_runbook(write(tmp_path, """
        name: short
        strategy: parallel
        steps:
          - {name: s, script: s.sh}
          - {name: h, http: "http://127.0.0.1:1/"}
          - {name: r, runbook: other}
          - {name: a, approval: true}
          - {name: c, copy: {dest: /tmp/x, content: y, mode: "0640"}}
          - {name: w, wait: {tcp: 22}, when: [params, "1 == 1"], changed_when: false}
    """))
    s, h, r, a, c, w = rb.steps
    assert s.script is not None and s.script.src == "s.sh"
    assert h.http is not None and h.http.url == "http://127.0.0.1:1/" and h.http.status == [200]
    assert r.runbook is not None and r.runbook.name == "other"
    assert a.approval is not None and a.approval.timeout == 3600
    assert c.copy_ is not None and c.copy_.mode_int == 0o640
    assert w.wait is not None and w.wait.tcp == "22" and w.when == "(params) and (1 == 1)"
    assert w.changed_when == "false"
    assert rb.strategy.batch_size(7) == 7


@pytest.mark.parametrize("batch, hosts, size", [(1, 10, 1), (3, 10, 3), ("25%", 10, 3),
                                                ("25%", 2, 1), ("100%", 5, 5), ("50 %", 3, 2)])
def test_batch_sizes(batch: int | str, hosts: int, size: int) -> None:
    assert Strategy.model_validate({"rolling": {"batch": batch}}).batch_size(hosts) == size


PARAMS = """
    name: typed
    params:
      service: {type: string, required: true, pattern: '^[a-z]+$'}
      count: {type: int, default: 3, min: 1, max: 10}
      force: {type: bool, default: false}
      mode: {type: choice, choices: [soft, hard], default: soft}
      where: {type: hosts, default: web}
      token: {type: string, secret: true}
    steps: [{name: a, run: "true"}]
"""


def test_params_are_converted_from_text(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, PARAMS))
    assert validate_params(rb, {"service": "nginx", "count": "7", "force": "yes", "mode": "hard",
                                "token": "t0k"}) == {
        "service": "nginx", "count": 7, "force": True, "mode": "hard", "where": "web", "token": "t0k"}
    assert validate_params(rb, {"service": "nginx"})["token"] is None
    assert masked_params(rb, {"service": "nginx", "token": "t0k"}) == {"service": "nginx",
                                                                      "token": "***"}


@pytest.mark.parametrize("given, message", [
    ({"service": "nginx", "count": "lots"}, "param 'count': 'lots' is not a whole number >= 1 and <= 10"),
    ({"service": "nginx", "count": 11}, "param 'count': 11 is not a whole number >= 1 and <= 10"),
    ({"service": "nginx", "count": True}, "param 'count': True is not a whole number >= 1 and <= 10"),
    ({"service": "nginx", "force": "maybe"},
     "param 'force': 'maybe' is not true or false (also yes/no, 1/0)"),
    ({"service": "nginx", "mode": "sfot"},
     "param 'mode': 'sfot' is not one of: soft, hard; did you mean 'soft'?"),
    ({"service": "nginx; reboot"}, "param 'service': 'nginx; reboot' is not text matching '^[a-z]+$'"),
    ({"service": ["a"]}, "param 'service': ['a'] is not text matching '^[a-z]+$'"),
    ({"service": "x", "where": " "}, "param 'where': ' ' is not a host pattern such as web, "
                                     "web:!web3 or label:role=db"),
    ({}, "param 'service' is required (text matching '^[a-z]+$')"),
    ({"service": "x", "cuont": 2}, "unknown param 'cuont'; did you mean 'count'? (params of typed: "
                                   "count, force, mode, service, token, where)"),
])
def test_param_errors_name_the_param_and_what_is_allowed(tmp_path: Path, given: dict[str, object],
                                                         message: str) -> None:
    rb = load_runbook(write(tmp_path, PARAMS))
    with pytest.raises(ParamError) as err:
        validate_params(rb, given)
    assert str(err.value) == message


def test_several_param_errors_are_listed_together(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, PARAMS))
    with pytest.raises(ParamError) as err:
        validate_params(rb, {"count": "x"})
    assert str(err.value) == ("2 problems with the params of typed:\n"
                              "  param 'service' is required (text matching '^[a-z]+$')\n"
                              "  param 'count': 'x' is not a whole number >= 1 and <= 10")


# ---------------------------------------------------------------- templates

@pytest.mark.parametrize("value", ["x; touch /tmp/pwned", "$(id)", "`id`", "a'b", "a\nb", "--help",
                                   "*", "~root", "a && b || c", "\"; rm -rf / #"])
def test_every_substitution_is_one_quoted_word(value: str) -> None:
    cmd = render_command("printf '%s\\n' {{ params.v }} | wc -l", {"params": {"v": value}})
    assert cmd.parts == (Raw("printf '%s\\n' "), Quoted(value), Raw(" | wc -l"))


def test_quoting_through_loops_filters_and_secrets() -> None:
    ctx = {"params": {"files": ["a b", "c;d"], "pw": SecretValue("hunter2")}}
    cmd = render_command("rm -f {% for f in params.files %}{{ f }} {% endfor %}&& login {{ params.pw }}"
                         " {{ params.files | join(',') | upper }}", ctx)
    assert cmd.render() == "rm -f 'a b' 'c;d' && login hunter2 'A B,C;D'"
    assert cmd.masked() == "rm -f 'a b' 'c;d' && login *** 'A B,C;D'"
    assert Masked("hunter2") in cmd.parts


def test_templates_are_sandboxed_and_strict() -> None:
    with pytest.raises(TemplateError) as err:
        render_text("{{ params.__class__.__mro__ }}", {"params": {}})
    assert "unsafe" in str(err.value)
    with pytest.raises(TemplateError) as err:
        render_command("echo {{ params.servce }}", {"params": {"service": "x"}}, what="step 'a': run")
    assert str(err.value) == "step 'a': run: 'dict object' has no attribute 'servce'"
    with pytest.raises(TemplateError):
        render_text("{% set x = params.update({'a': 1}) %}", {"params": {}})  # immutable
    assert evaluate("steps.a.rc == 0 and 'up' in steps.a.stdout",
                    {"steps": {"a": {"rc": 0, "stdout": "is up"}}}) is True


def test_examples_are_valid() -> None:
    lib = RunbookLibrary(EXAMPLES)
    assert lib.validate() == []
    assert sorted(rb.name for rb in lib.list()) == ["disk-cleanup", "restart-service",
                                                    "rolling-update", "rotate-logs"]
    for rb in lib.list():
        assert rb.description and rb.owner


def test_library_reports_duplicates_and_unknown_names(tmp_path: Path) -> None:
    write(tmp_path, "name: a\nsteps: [{name: s, run: x}]\n", "one.yaml")
    write(tmp_path, "name: a\nsteps: [{name: s, run: x}]\n", "two.yml")
    write(tmp_path, "name: b\nsteps: nope\n", "three.yaml")
    lib = RunbookLibrary(tmp_path)
    found = [str(i).replace(str(tmp_path) + "/", "") for i in lib.validate()]
    assert found == ["three.yaml:2: steps: must be a list, not 'nope'",
                     "two.yml:1: name: runbook name 'a' is also used by one.yaml"]
    with pytest.raises(NotFoundError) as err:
        lib.get("c")
    assert str(err.value).startswith(f"no runbook named 'c' ({tmp_path})")
    with pytest.raises(NotFoundError):
        lib.get("missing.yaml")
