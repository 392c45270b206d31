"""Inhibition: a firing alert mutes others, as Alertmanager's ``inhibit_rules`` do.

A rule mutes a *target* alert when the target matches ``target_matchers`` and
some *source* alert that is firing matches ``source_matchers`` and has the same
value as the target for every label in ``equal`` — a label missing on both
sides counts as equal (both are the empty string), one missing on one side
only does not. When the target matches the source matchers too, source
alerts that also match the target matchers are not considered: an alert never
inhibits itself, and two alerts that both match both sides never inhibit each
other (Alertmanager's rule). Silenced alerts still inhibit; pending and
resolved ones do not.

The deprecated ``source_match`` / ``source_match_re`` / ``target_match`` /
``target_match_re`` maps are accepted and added to the matcher lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import PrivateAttr, field_validator, model_validator

from watchkeeper.alerting.matchers import Matcher, matchers_from_legacy, matches, parse_matchers
from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.config.types import StrictModel
from watchkeeper.errors import InputError

__all__ = ["InhibitRule", "Inhibitor"]


def _check_matchers(values: list[str]) -> list[str]:
    for text in values:
        try:
            parse_matchers(text)
        except InputError as exc:
            raise ValueError(exc.message) from None
    return values


class InhibitRule(StrictModel):
    """One entry of ``inhibit_rules``."""

    source_matchers: list[str] = []
    target_matchers: list[str] = []
    equal: list[str] = []
    source_match: dict[str, str] = {}
    source_match_re: dict[str, str] = {}
    target_match: dict[str, str] = {}
    target_match_re: dict[str, str] = {}
    _sources: list[Matcher] = PrivateAttr(default_factory=list)
    _targets: list[Matcher] = PrivateAttr(default_factory=list)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _valid_matchers(cls, values: list[str]) -> list[str]:
        return _check_matchers(values)

    @model_validator(mode="after")
    def _compile(self) -> InhibitRule:
        try:
            self._sources = [m for t in self.source_matchers for m in parse_matchers(t)]
            self._sources += matchers_from_legacy(self.source_match, self.source_match_re)
            self._targets = [m for t in self.target_matchers for m in parse_matchers(t)]
            self._targets += matchers_from_legacy(self.target_match, self.target_match_re)
        except InputError as exc:
            raise ValueError(exc.message) from None
        return self

    @property
    def sources(self) -> list[Matcher]:
        return self._sources

    @property
    def targets(self) -> list[Matcher]:
        return self._targets

    def inhibited_by(self, target: Alert, firing: Sequence[Alert]) -> Alert | None:
        """The first firing alert of ``firing`` by which this rule mutes ``target``, or None."""
        labels = target.labels
        if not matches(self._targets, labels):
            return None
        two_sided = matches(self._sources, labels)
        for src in firing:
            if src.state != AlertState.FIRING or not matches(self._sources, src.labels):
                continue
            if any(src.labels.get(n, "") != labels.get(n, "") for n in self.equal):
                continue
            if two_sided and matches(self._targets, src.labels):
                continue
            return src
        return None


class Inhibitor:
    """All inhibit rules of a config."""

    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = list(rules)

    def inhibited_by(self, target: Alert, firing: Sequence[Alert]) -> str | None:
        """The fingerprint of an alert that inhibits ``target``, or None."""
        for rule in self.rules:
            src = rule.inhibited_by(target, firing)
            if src is not None:
                return src.fingerprint
        return None

    def inhibits(self, target: Alert, firing: Sequence[Alert]) -> bool:
        """True when some rule mutes ``target`` given the alerts ``firing`` now."""
        return self.inhibited_by(target, firing) is not None
