"""PromQL: parse an expression, then evaluate it over the store."""
