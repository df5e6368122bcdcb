"""The mailbox step: unsubscribe requests, bounces and complaints read by mail, applied once.

For each message the mailbox hands out: classify it (`core.bounces`), then, in one
transaction, apply it through the subscriptions service and record its SHA-256 in the
``inbound_mail`` ledger; only after that commit is it marked done in the mailbox. A message seen
again (marking failed, or a copy) finds its ledger row and changes nothing, so nothing is ever
counted twice. Effects: an unsubscribe request with a valid token unsubscribes at once; a hard
bounce or a complaint suppresses the address (status ``bounced``); a soft bounce adds one to the
bounce score, which suppresses it at the threshold (the same score the SMTP path uses).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.bounces import Inbound, classify
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailbox import Mailbox
from paperalerts.errors import TokenError
from paperalerts.pipeline import subscriptions

log = logging.getLogger(__name__)
ACTOR = "mailbox"


@dataclass(frozen=True)
class MailboxConfig:
    """Values the step needs (no environment here)."""

    secret: str
    mail_domain: str
    bounce_threshold: int = 3

    @property
    def unsubscribe_address(self) -> str:
        return f"unsubscribe@{self.mail_domain}"


@dataclass
class PollOutcome:
    """Counts per outcome: unsubscribed, hard, soft, complaint, ignored, unknown (an address or
    token that names no subscriber), seen (already applied earlier)."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def read(self) -> int:
        return self.counts["messages"]


def poll_mailbox(
    factory: sessionmaker[Session], box: Mailbox, cfg: MailboxConfig, *, now: datetime
) -> PollOutcome:
    """Apply every unprocessed message of `box` and mark it done."""
    out = PollOutcome()
    for key, raw in box.unprocessed():
        out.counts["messages"] += 1
        try:
            out.counts[_once(factory, raw, key, cfg, now)] += 1
        except IntegrityError:  # a concurrent poll recorded the same message first
            out.counts["seen"] += 1
        box.done(key)
    return out


def _once(
    factory: sessionmaker[Session], raw: bytes, key: str, cfg: MailboxConfig, now: datetime
) -> str:
    """Apply one message and record it in the ledger, in one transaction; "seen" when the
    ledger has it already."""
    digest = hashlib.sha256(raw).hexdigest()
    with transaction(factory) as s:
        if s.get(m.InboundMail, digest) is not None:
            return "seen"
        try:
            inbound = classify(raw, unsubscribe_address=cfg.unsubscribe_address)
        except Exception as e:  # a message we cannot read must not stop the others
            log.warning("mailbox message %s unreadable: %s", key, e)
            inbound = Inbound("ignored", f"unreadable: {e}")
        outcome, email = _apply(s, inbound, cfg, now)
        s.add(m.InboundMail(key=digest, kind=outcome, email=email,
                            detail=inbound.detail[:1000], processed_at=now))
        s.flush()
        return outcome


def _apply(
    s: Session, inbound: Inbound, cfg: MailboxConfig, now: datetime
) -> tuple[str, str | None]:
    """Apply one classified message; returns (outcome, the address it concerned)."""
    if inbound.kind == "unsubscribe" and inbound.token:
        try:
            sub = subscriptions.from_token(s, cfg.secret, "unsubscribe", inbound.token)
        except TokenError as e:
            log.info("mailto unsubscribe with a refused token: %s", e)
            return "unknown", None
        subscriptions.unsubscribe(s, sub, now, ACTOR)
        return "unsubscribed", sub.email
    outcome, email = "ignored", None
    for v in inbound.verdicts:
        target = subscriptions.by_email(s, v.email)
        if target is None:
            outcome = "unknown" if outcome == "ignored" else outcome
            continue
        hard = v.kind in ("hard", "complaint")
        subscriptions.record_bounce(s, target, now, ACTOR, hard=hard,
                                    threshold=cfg.bounce_threshold)
        outcome, email = v.kind, target.email
    return outcome, email
