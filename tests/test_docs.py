"""Every YAML example in the docs and the README is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watchkeeper.config.loader import validate_data
from watchkeeper.config.yamlsource import read_yaml
from watchkeeper.errors import ConfigIssue

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _yaml_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(re.finditer(r"```yaml\n(.*?)```", doc.read_text(), re.DOTALL)):
            out.append((f"{doc.name}#{i}", m.group(1)))
    return out


@pytest.mark.parametrize(("where", "text"), _yaml_blocks(), ids=[w for w, _ in _yaml_blocks()])
def test_yaml_examples_are_valid_configs(where: str, text: str, tmp_path: Path) -> None:
    if text.startswith("# prometheus.yml"):
        return  # a Prometheus config shown for reference, not ours
    if text.startswith("groups:"):  # a Prometheus rule file
        from watchkeeper.alerting.rulefiles import load_rules_text

        ruleset = load_rules_text(text, "example.yaml")
        assert not ruleset.issues and ruleset.groups
        return
    path = tmp_path / "example.yaml"
    path.write_text(text)
    issues: list[ConfigIssue] = []
    located = read_yaml(path, issues, environ={"WATCHKEEPER_TOKEN": "x" * 32,
                                               "PD_ROUTING_KEY": "0123456789abcdef",
                                               "WK_DB_PASSWORD": "x"})
    assert not issues, issues
    assert located is not None
    located.data.pop("include", None)  # the included files are not part of the example
    validate_data(located)


def test_example_config_is_valid() -> None:
    from watchkeeper.config import load_config

    cfg = load_config(ROOT / "examples" / "watchkeeper.yaml", environ={}).config
    assert {c.type for c in cfg.checks} >= {"http", "tcp", "dns", "tls", "command", "scrape"}
