"""The notification message: Alertmanager's webhook data (version 4) and what is rendered from it.

Every integration renders from the same message, the JSON body of
Alertmanager's webhook (``version``, ``groupKey``, ``truncatedAlerts``,
``status``, ``receiver``, ``groupLabels``, ``commonLabels``,
``commonAnnotations``, ``externalURL``, ``alerts[]``), stored in the outbox.
watchkeeper's own extras travel beside it under the key ``"watchkeeper"``
(stripped before a webhook is sent): the action (``notify`` or ``acknowledge``)
and whether every firing alert is acknowledged.

Titles and texts default to Alertmanager's default templates (the subject
``[FIRING:2] DiskFull (web1 critical)``). Custom ``title``/``text``/``html``/
``description`` strings are Go templates run over the message in
Alertmanager's template data shape: ``.Status``, ``.Receiver``,
``.GroupLabels.x``, ``.CommonLabels.x``, ``.CommonAnnotations.x``,
``.ExternalURL``, ``{{ range .Alerts }}{{ .Labels.x }} {{ .Annotations.x }}
{{ .Status }} {{ .StartsAt }}{{ end }}``, ``{{ len .Alerts }}``, and the
default templates by name (``{{ template "slack.default.title" . }}``).
Not supported: ``.Alerts.Firing``, ``.SortedPairs`` and other Go methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from watchkeeper.alerting.model import Alert

__all__ = ["build_message", "common_labels", "default_title", "render", "sort_alerts",
           "alerts_text", "email_html", "email_text", "strip_extras", "firing", "resolved"]


def sort_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """Alertmanager's order: by ``job``, then ``instance``, then the whole label set."""
    def key(a: Alert) -> tuple[Any, ...]:
        parts: list[Any] = []
        for name in ("job", "instance"):
            v = a.labels.get(name)
            parts.append((0, v) if v is not None else (1, ""))
        parts.append(sorted(a.labels.items()))
        return tuple(parts)

    return sorted(alerts, key=key)


def common_labels(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every map has with the same value."""
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out


def build_message(*, receiver: str, group_key: str, group_labels: Mapping[str, str],
                  alerts: Sequence[Alert], external_url: str = "",
                  extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The version 4 webhook message for one group's notification (+ watchkeeper extras)."""
    ordered = sort_alerts(alerts)
    items = [a.to_webhook() for a in ordered]
    status = "firing" if any(i["status"] == "firing" for i in items) else "resolved"
    msg: dict[str, Any] = {
        "receiver": receiver,
        "status": status,
        "alerts": items,
        "groupLabels": dict(sorted(group_labels.items())),
        "commonLabels": dict(sorted(common_labels([i["labels"] for i in items]).items())),
        "commonAnnotations": dict(sorted(common_labels([i["annotations"] for i in items]).items())),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }
    if extras:
        msg["watchkeeper"] = dict(extras)
    return msg


def strip_extras(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message without watchkeeper's extras: exactly Alertmanager's webhook body."""
    return {k: v for k, v in message.items() if k != "watchkeeper"}


def firing(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in message["alerts"] if a["status"] == "firing"]


def resolved(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in message["alerts"] if a["status"] == "resolved"]


def default_title(message: Mapping[str, Any]) -> str:
    """Alertmanager's ``__subject``: ``[FIRING:2] DiskFull (web1 critical)``.

    Group label values sorted by name, then, when the common labels hold more than
    the group labels, the values of the extra common labels in parentheses. As in
    Alertmanager, a trailing space stands where no parenthesis follows.
    """
    status = str(message["status"]).upper()
    head = f"[{status}:{len(firing(message))}]" if message["status"] == "firing" else f"[{status}]"
    group = message["groupLabels"]
    common = message["commonLabels"]
    values = " ".join(group[k] for k in sorted(group))
    out = f"{head} {values} "
    if len(common) > len(group):
        extra = [common[k] for k in sorted(common) if k not in group]
        out += f"({' '.join(extra)})"
    return out


def _alert_lines(alert: Mapping[str, Any]) -> list[str]:
    lines = ["Labels:"]
    lines += [f" - {k} = {v}" for k, v in sorted(alert["labels"].items())]
    if alert["annotations"]:
        lines.append("Annotations:")
        lines += [f" - {k} = {v}" for k, v in sorted(alert["annotations"].items())]
    if alert.get("generatorURL"):
        lines.append(f"Source: {alert['generatorURL']}")
    return lines


def alerts_text(message: Mapping[str, Any]) -> str:
    """A plain-text list of the message's alerts, firing first (Alertmanager's email text)."""
    out: list[str] = []
    for title, items in (("Alerts Firing", firing(message)), ("Alerts Resolved", resolved(message))):
        if not items:
            continue
        out.append(f"{title}:")
        for a in items:
            out.extend(_alert_lines(a))
            out.append("")
    return "\n".join(out).rstrip() + "\n" if out else ""


def email_text(message: Mapping[str, Any]) -> str:
    """The default plain-text body of an email notification."""
    text = f"{default_title(message).rstrip()}\n\n{alerts_text(message)}"
    if message.get("externalURL"):
        text += f"\nSent by watchkeeper: {message['externalURL']}\n"
    return text


_HTML = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: sans-serif">
<h2 style="color: {{ '#e45959' if status == 'firing' else '#68b90f' }}">{{ title }}</h2>
{% for heading, items in sections %}{% if items %}
<h3>{{ heading }}</h3>
{% for a in items %}<table style="border-collapse: collapse; margin-bottom: 1em">
<tr><th colspan="2" style="text-align: left">{{ a.labels.get('alertname', '') }}</th></tr>
{% for k, v in a.labels | dictsort %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>
{% endfor %}{% for k, v in a.annotations | dictsort %}<tr><td><em>{{ k }}</em></td><td>{{ v }}</td></tr>
{% endfor %}{% if a.generatorURL %}<tr><td colspan="2"><a href="{{ a.generatorURL }}">Source</a></td></tr>
{% endif %}</table>
{% endfor %}{% endif %}{% endfor %}
{% if external_url %}<p><a href="{{ external_url }}">Sent by watchkeeper</a></p>{% endif %}
</body></html>
"""


def email_html(message: Mapping[str, Any]) -> str:
    """The default HTML body of an email notification (values HTML-escaped)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_HTML).render(
        title=default_title(message).rstrip(), status=message["status"],
        sections=[("Firing", firing(message)), ("Resolved", resolved(message))],
        external_url=message.get("externalURL", ""),
    )


def pagerduty_details(message: Mapping[str, Any]) -> dict[str, str]:
    """Alertmanager's default ``details`` of a PagerDuty event."""
    return {
        "firing": alerts_text({**message, "alerts": firing(message)}),
        "resolved": alerts_text({**message, "alerts": resolved(message)}),
        "num_firing": str(len(firing(message))),
        "num_resolved": str(len(resolved(message))),
    }


_DEFAULTS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "slack.default.title": default_title,
    "email.default.subject": default_title,
    "pagerduty.default.description": default_title,
    "__subject": default_title,
    "slack.default.text": lambda m: alerts_text(m).rstrip(),
    "email.default.html": email_html,
    "pagerduty.default.client": lambda m: "watchkeeper",
}
_TEMPLATE_CALL = re.compile(r"\{\{-?\s*template\s+\"([^\"]+)\"\s+\.\s*-?\}\}")


def _template_data(message: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Status": message["status"],
        "Receiver": message["receiver"],
        "GroupLabels": dict(message["groupLabels"]),
        "CommonLabels": dict(message["commonLabels"]),
        "CommonAnnotations": dict(message["commonAnnotations"]),
        "ExternalURL": message.get("externalURL", ""),
        "GroupKey": message.get("groupKey", ""),
        "Alerts": [
            {"Status": a["status"], "Labels": dict(a["labels"]),
             "Annotations": dict(a["annotations"]), "StartsAt": a["startsAt"],
             "EndsAt": a["endsAt"], "GeneratorURL": a["generatorURL"],
             "Fingerprint": a["fingerprint"]}
            for a in message["alerts"]
        ],
    }


def render(template: str | None, message: Mapping[str, Any], default: str) -> str:
    """Render a config template (a Go template over the message), or ``default`` if unset.

    Raises watchkeeper.alerting.templating.TemplateError (an InputError) when the
    template does not parse or run; delivery treats that as a permanent failure.
    """
    if template is None:
        return default
    if "{{" not in template:
        return template

    def named(m: re.Match[str]) -> str:
        fn = _DEFAULTS.get(m.group(1))
        if fn is None:
            return m.group(0)
        return str(fn(message)).replace("{{", "{{`{{`}}")

    text = _TEMPLATE_CALL.sub(named, template)
    from watchkeeper.alerting.templating import parse_template

    return parse_template(text).execute(_template_data(message),
                                        external_url=str(message.get("externalURL", "")))
