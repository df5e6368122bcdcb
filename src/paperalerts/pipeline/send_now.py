"""Send one subscriber's digest now, outside their schedule (the CLI's `digests send --to`).

The delivery is an ordinary digest row, so it is claimed, sent, retried and deduplicated like any
other; its period key names the moment it was asked for, so it never collides with (or stands in
for) the scheduled digest of the period, which then carries whatever matches arrive later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline.deliver import _new_delivery


def dispatch_now(
    factory: sessionmaker[Session], subscriber_id: int, *, now: datetime
) -> int | None:
    """Create a delivery of every undelivered match of the subscriber and return its id; None
    when nothing is waiting (an empty digest is never sent on request)."""
    with transaction(factory) as s:
        ids = list(
            s.scalars(
                select(m.Match.id)
                .where(m.Match.subscriber_id == subscriber_id, m.Match.delivery_id.is_(None))
                .order_by(m.Match.id)
            )
        )
        if not ids:
            return None
        return _new_delivery(s, subscriber_id, "digest", f"now-{now:%Y%m%dT%H%M%S.%f}", ids)
