"""``watchkeeper triggers``: the configured schedules and alert triggers, and their state.

With ``--server URL`` (or ``WATCHKEEPER_SERVER``) it shows what the running server knows
(``GET /api/v1/triggers``): each schedule's next fire time and whether its run is going,
each alert trigger's cooldowns and rate-limit use, and every trigger's last firing and
last run. Without a server it shows what the config file tells: the triggers (disabled
ones too), each schedule's next fire time from now, cooldowns and rate limits.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from watchkeeper.cli.common import ConfigOpt, JsonOpt, ServerOpt, http_get, load, print_json

__all__ = ["triggers"]


def triggers(json_: JsonOpt = False, config: ConfigOpt = None, server: ServerOpt = None) -> None:
    """List schedules and alert triggers: next fire time, cooldown and rate-limit state, last run."""
    if server:
        items: list[dict[str, Any]] = http_get(server.rstrip("/"), "/api/v1/triggers")["triggers"]
        source = server.rstrip("/")
    else:
        from watchkeeper.automation.triggers import trigger_summary

        loaded = load(config)
        now = time.time()
        items = [trigger_summary(t, now=now) for t in loaded.config.triggers]
        source = str(loaded.path) if loaded.path else "the default config"
    if json_:
        print_json(items)
        return
    if not items:
        typer.echo(f"no triggers configured ({source})")
        return
    for line in render(items, now=time.time()):
        typer.echo(line)


def render(items: list[dict[str, Any]], *, now: float) -> list[str]:
    """One block per trigger: a title line, then indented ``key: value`` lines."""
    from watchkeeper.alerting.model import format_time

    def when(ts: float | None) -> str:
        if ts is None:
            return "-"
        delta = ts - now
        rel = _human(abs(delta))
        return f"{format_time(ts)} ({'in ' + rel if delta >= 0 else rel + ' ago'})"

    lines: list[str] = []
    for it in items:
        flag = "" if it.get("enabled", True) else "  (disabled)"
        lines.append(f"{it['name']}  [{it['kind']}] -> runbook {it['runbook']}{flag}")
        if it.get("limit"):
            lines.append(f"  limit: {it['limit']}")
        if it["kind"] == "schedule":
            lines.append(f"  schedule: {it['schedule']} ({it['timezone']})")
            lines.append(f"  next: {when(it.get('next'))}")
            if it.get("running"):
                lines.append("  running: yes (the next firing is skipped if still going)")
        else:
            lines.append(f"  matchers: {', '.join(it.get('matchers') or [])}")
            lines.append(f"  cooldown: {_human(float(it['cooldown']))} per alert")
            rl = it.get("rate_limit")
            state = it.get("rate_limit_state")
            if rl:
                text = f"{rl['runs']} runs per {_human(float(rl['per']))}"
                if state:
                    text += f"; used {state['used']}, {state['remaining']} left"
                    if state.get("resets_at") is not None:
                        text += f" (a slot frees {when(state['resets_at'])})"
                lines.append(f"  rate limit: {text}")
            for c in it.get("cooling_down") or []:
                lines.append(f"  cooling down: alert {str(c['fingerprint'])[:12]} until "
                             f"{when(c['until'])}")
            if it.get("in_flight"):
                lines.append(f"  in flight: {it['in_flight']} remediation(s)")
        if "last_fired" in it:
            lines.append(f"  last fired: {when(it.get('last_fired'))}")
        if "last_run" in it:
            run = it.get("last_run")
            lines.append("  last run: -" if not run else
                         f"  last run: {str(run['id'])[:8]} {run['status']} "
                         f"{when(run.get('created_at'))}")
    return lines


def _human(seconds: float) -> str:
    from watchkeeper.units import format_duration

    return format_duration(round(seconds))
