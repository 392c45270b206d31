"""Receiver integrations: webhook, Slack, email, PagerDuty, forward to Alertmanager.

:func:`build_receivers` turns an :class:`~watchkeeper.alerting.config.AlertingConfig`
into one :class:`Receiver` per integration, keyed ``"<receiver>/<kind>[<i>]"``
(e.g. ``"team/webhook[0]"``): the key the dispatcher writes into the outbox
and the delivery service runs one worker for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.receivers.base import DeliveryError, Receiver, redact_url

if TYPE_CHECKING:
    import httpx

    from watchkeeper.alerting.config import AlertingConfig, ReceiverConfig
    from watchkeeper.clock import Clock

__all__ = ["DeliveryError", "Integration", "Receiver", "ReceiverSet", "build_receivers",
           "integrations", "redact_url"]

_KINDS = (("webhook", "webhook_configs"), ("slack", "slack_configs"), ("email", "email_configs"),
          ("pagerduty", "pagerduty_configs"), ("alertmanager", "alertmanager_configs"))


@dataclass(frozen=True)
class Integration:
    """One integration of a receiver: ``key`` = ``receiver/kind[i]``."""

    receiver: str
    kind: str
    index: int
    config: Any

    @property
    def name(self) -> str:
        return f"{self.kind}[{self.index}]"

    @property
    def key(self) -> str:
        return f"{self.receiver}/{self.name}"

    @property
    def send_resolved(self) -> bool:
        return bool(self.config.send_resolved)

    @property
    def resend_always(self) -> bool:
        """Forwarding re-sends firing alerts at every flush, as Prometheus re-sends them."""
        return self.kind == "alertmanager"


def integrations(receiver: ReceiverConfig) -> list[Integration]:
    """The integrations of one receiver, in config order by kind."""
    out = []
    for kind, attr in _KINDS:
        for i, cfg in enumerate(getattr(receiver, attr)):
            out.append(Integration(receiver.name, kind, i, cfg))
    return out


class ReceiverSet(Mapping[str, Receiver]):
    """The receivers of a config by integration key; ``aclose()`` closes their clients."""

    def __init__(self, receivers: dict[str, Receiver]) -> None:
        self._receivers = receivers

    def __getitem__(self, key: str) -> Receiver:
        return self._receivers[key]

    def __contains__(self, key: object) -> bool:
        return key in self._receivers

    def __iter__(self) -> Iterator[str]:
        return iter(self._receivers)

    def __len__(self) -> int:
        return len(self._receivers)

    async def aclose(self) -> None:
        for r in self._receivers.values():
            await r.aclose()


def build_receivers(config: AlertingConfig, *, client: httpx.AsyncClient | None = None,
                    clock: Clock | None = None) -> ReceiverSet:
    """One Receiver per integration of ``config``; HTTP ones share ``client`` when given.

    Raises DeliveryError (not retryable) when an integration lacks what it needs
    (an email without a smarthost, Slack without api_url).
    """
    from watchkeeper.alerting.receivers.alertmanager import AlertmanagerReceiver
    from watchkeeper.alerting.receivers.email import EmailReceiver
    from watchkeeper.alerting.receivers.pagerduty import PagerdutyReceiver
    from watchkeeper.alerting.receivers.slack import SlackReceiver
    from watchkeeper.alerting.receivers.webhook import WebhookReceiver

    g = config.global_
    out: dict[str, Receiver] = {}
    for rcv in config.receivers:
        for integ in integrations(rcv):
            c = integ.config
            if g.http_config is not None and getattr(c, "http_config", False) is None:
                c = c.model_copy(update={"http_config": g.http_config})  # global default
            r: Receiver
            if integ.kind == "webhook":
                r = WebhookReceiver(c, client=client)
            elif integ.kind == "slack":
                r = SlackReceiver(c, api_url=g.slack_api_url, client=client)
            elif integ.kind == "email":
                r = EmailReceiver(c, g)
            elif integ.kind == "pagerduty":
                r = PagerdutyReceiver(c, url=g.pagerduty_url, client=client)
            else:
                r = AlertmanagerReceiver(c, client=client, clock=clock)
            out[integ.key] = r
    return ReceiverSet(out)
