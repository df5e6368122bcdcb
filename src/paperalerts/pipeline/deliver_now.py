"""Send one subscriber's digest now, through the normal delivery path (admin "send digest now").

Their undelivered matches go into one new delivery (a ``digest``, or an ``alert`` for an
instant subscriber) with the period key ``now-<UTC time>``, which `send_delivery` then claims,
renders, sends and records like any other: a failure retries with backoff through the sweep, and
the papers are never sent twice (they are attached to this delivery). The subscriber's schedule
is left alone: their next digest carries what matches after this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import Mailer
from paperalerts.pipeline.deliver import (
    DeliveryConfig,
    SendOutcome,
    _new_delivery,  # the one way a delivery row is made, shared with the scheduled dispatch
    send_delivery,
)


class NotSendable(ValueError):
    """The subscriber does not exist or is not active (nothing may be mailed to them)."""


@dataclass(frozen=True)
class SendNow:
    """What "send now" did: no delivery when nothing was pending."""

    delivery_id: int | None
    papers: int
    outcome: SendOutcome | None = None

    def describe(self) -> str:
        if self.delivery_id is None or self.outcome is None:
            return "Nothing to send: no matched papers are waiting for this subscriber."
        papers = f"{self.papers} paper{'' if self.papers == 1 else 's'}"
        if self.outcome.status == "sent":
            return f"Sent delivery {self.delivery_id} with {papers}."
        if self.outcome.status == "retry":
            return (f"Delivery {self.delivery_id} with {papers} could not be sent yet "
                    f"({self.outcome.detail}); it will be retried.")
        return f"Delivery {self.delivery_id} with {papers}: {self.outcome.status} " \
               f"({self.outcome.detail})."


def dispatch_now(factory: sessionmaker[Session], subscriber_id: int, *, now: datetime
                 ) -> tuple[int | None, int]:
    """Create the delivery of the subscriber's undelivered matches: (its id, papers), or
    (None, 0) when none are waiting. Raises NotSendable for a missing or inactive subscriber."""
    with transaction(factory) as s:
        sub = s.get(m.Subscriber, subscriber_id)
        if sub is None:
            raise NotSendable(f"no subscriber {subscriber_id}")
        if sub.status != "active":
            raise NotSendable(f"{sub.email} is {sub.status}: only an active subscriber is mailed")
        ids = list(s.scalars(select(m.Match.id).where(
            m.Match.subscriber_id == subscriber_id, m.Match.delivery_id.is_(None)
        ).order_by(m.Match.id)))
        if not ids:
            return None, 0
        kind = "alert" if sub.frequency == "instant" else "digest"
        did = _new_delivery(s, subscriber_id, kind, f"now-{now:%Y%m%dT%H%M%S%f}", ids)
        return did, (len(ids) if did is not None else 0)


def send_now(
    factory: sessionmaker[Session], subscriber_id: int, *, mailer: Mailer, cfg: DeliveryConfig,
    now: datetime,
) -> SendNow:
    """`dispatch_now`, then `send_delivery` of what it made."""
    did, papers = dispatch_now(factory, subscriber_id, now=now)
    if did is None:
        return SendNow(None, 0)
    return SendNow(did, papers, send_delivery(factory, did, mailer=mailer, cfg=cfg, now=now))
