"""Queries over the store: series selectors now, PromQL as it grows."""

from watchkeeper.query.selector import Matcher, matches_all, parse_selector

__all__ = ["Matcher", "matches_all", "parse_selector"]
