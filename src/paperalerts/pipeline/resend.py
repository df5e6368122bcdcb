"""Resending failed deliveries, one or in bulk, for every face (admin, CLI, API): each gets a
new queued delivery with the same papers (`edges.db.retries.resend`), audited, in one
transaction; the sweep sends them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import repo, retries
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.db.retries import Resent

__all__ = ["Resent", "failed_deliveries", "resend_deliveries"]


def failed_deliveries(
    factory: sessionmaker[Session],
    *,
    since: datetime | None = None,
    kind: str | None = None,
    subscriber_id: int | None = None,
) -> list[int]:
    """Ids of failed digests and alerts that can be resent (see `retries.failed_to_resend`)."""
    with factory() as s:
        return retries.failed_to_resend(s, since=since, kind=kind, subscriber_id=subscriber_id)


def resend_deliveries(
    factory: sessionmaker[Session], ids: Sequence[int], *, now: datetime, actor: str
) -> list[Resent]:
    """Resend each of `ids` (refusals say why), one audit entry per resend, in one
    transaction."""
    with transaction(factory) as s:
        out = retries.resend(s, ids, now=now, view_key=lambda: secrets.token_urlsafe(24))
        for r in out:
            if r.new is not None:
                repo.audit(s, "resend", "delivery", r.old, {"status": "failed"},
                           {"resend": r.new}, actor)  # fmt: skip
    return out
