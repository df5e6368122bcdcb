"""The mailbox step: unsubscribe requests, bounces and complaints read by mail, applied once.

For each message the mailbox hands out: classify it (`core.bounces`), then, in one
transaction, apply it through the subscriptions service and record its SHA-256 in the
``inbound_mail`` ledger; only after that commit is it marked done in the mailbox. A message seen
again (marking failed, or a copy) finds its ledger row and changes nothing, so nothing is ever
counted twice. Effects: an unsubscribe request with a valid token unsubscribes at once; a hard
bounce or a complaint suppresses the address (status ``bounced``); a soft bounce adds one to the
bounce score, which suppresses it at the threshold (the same score the SMTP path uses).

A bounce or complaint changes an address only when it proves that it concerns a message we sent
to that address (anyone can write a report naming any address and mail it to us):

- **signed envelope sender**: the report reached one of our VERP addresses, or returns our
  message with one as its Return-Path (`core.verp`); the signature names the delivery and its
  recipient, whatever address the reporting system wrote;
- **Message-ID**: the returned message carries the Message-ID of a delivery to the address the
  report names *and* an unsubscribe token we signed for that subscriber. Message-IDs alone are
  guessable (they are derived from the delivery id), the token is not.

Anything else is recorded in the ledger as ``unauthenticated`` (with the address it named, for
the admin's mailbox page) and changes nothing. A rejection for the sender's authentication or
reputation (``policy``, see `core.bounces`) never counts against the subscriber either.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.bounces import Inbound, Verdict, classify
from paperalerts.core.tokens import read_token
from paperalerts.core.verp import bounce_address, read_verp, verp_proves
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
    bounce_address: str = ""  # the BOUNCE_ADDRESS setting; "" = bounces@mail_domain

    @property
    def unsubscribe_address(self) -> str:
        return f"unsubscribe@{self.mail_domain}"

    @property
    def verp_base(self) -> str:
        return bounce_address(self.bounce_address, self.mail_domain)


@dataclass
class PollOutcome:
    """Counts per outcome: unsubscribed, hard, soft, complaint, policy (a rejection of the
    sender, nobody's bounce), unauthenticated (a report with no proof that we sent what it is
    about), ignored, unknown (a token that names no subscriber), seen (already applied earlier)."""

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
        outcome, email, why = _apply(s, inbound, cfg, now)
        detail = f"{inbound.detail}; {why}" if why else inbound.detail
        s.add(m.InboundMail(key=digest, kind=outcome, email=email,
                            detail=detail[:1000], processed_at=now))
        s.flush()
        return outcome


def _apply(
    s: Session, inbound: Inbound, cfg: MailboxConfig, now: datetime
) -> tuple[str, str | None, str]:
    """Apply one classified message; returns (outcome, the address it concerned, how that was
    established or why nothing changed)."""
    if inbound.kind == "unsubscribe" and inbound.token:
        try:
            sub = subscriptions.from_token(s, cfg.secret, "unsubscribe", inbound.token)
        except TokenError as e:
            log.info("mailto unsubscribe with a refused token: %s", e)
            return "unknown", None, f"token refused: {e}"
        subscriptions.unsubscribe(s, sub, now, ACTOR)
        return "unsubscribed", sub.email, ""
    if not inbound.verdicts:
        return "ignored", None, ""
    proven = _proof(s, inbound, cfg)
    if proven is None:
        named = ", ".join(sorted({v.email for v in inbound.verdicts}))
        log.info("unauthenticated %s naming %s ignored", inbound.kind, named)
        return ("unauthenticated", inbound.verdicts[0].email[:320],
                f"ignored: nothing proves we sent the reported message to {named}")
    sub, verdict, how = proven
    if verdict.kind == "policy":
        return "policy", sub.email, f"{how}; rejected for the sender's authentication " \
            f"or reputation ({verdict.status}), not the address: nothing changed"
    subscriptions.record_bounce(s, sub, now, ACTOR, hard=verdict.kind in ("hard", "complaint"),
                                threshold=cfg.bounce_threshold)
    return verdict.kind, sub.email, how


_SEVERITY = ("complaint", "hard", "soft", "policy")


def _worst(verdicts: list[Verdict]) -> Verdict:
    return min(verdicts, key=lambda v: _SEVERITY.index(v.kind))


def _proof(
    s: Session, inbound: Inbound, cfg: MailboxConfig
) -> tuple[m.Subscriber, Verdict, str] | None:
    """The subscriber a report proves it is about, its verdict and how it was proven."""
    verdicts = list(inbound.verdicts)
    for address in inbound.envelope:
        tag = read_verp(address, cfg.verp_base)
        delivery = s.get(m.Delivery, tag.delivery_id) if tag else None
        sub = s.get(m.Subscriber, delivery.subscriber_id) if delivery else None
        if tag and sub is not None and verp_proves(cfg.secret, tag, sub.email):
            # The signature names the recipient: forwarding may have put another address in
            # Final-Recipient, the report is about this delivery all the same.
            worst = _worst(verdicts)
            return (sub, Verdict(worst.kind, sub.email, worst.status),
                    f"proven by the signed envelope sender of delivery {tag.delivery_id}")
    for mid in inbound.message_ids:
        delivery = s.scalars(select(m.Delivery).where(m.Delivery.message_id == mid)).first()
        sub = s.get(m.Subscriber, delivery.subscriber_id) if delivery else None
        if sub is None or not _token_names(cfg.secret, inbound.returned_tokens, sub.id):
            continue
        named = [v for v in verdicts if v.email == sub.email]
        if named:
            return (sub, _worst(named),
                    f"proven by the Message-ID of delivery {delivery and delivery.id} "
                    "and its signed unsubscribe token")
    return None


def _token_names(secret: str, tokens: tuple[str, ...], sub_id: int) -> bool:
    """Whether one of `tokens` is an unsubscribe token we signed for `sub_id` (a later link
    reset does not matter: the question is who we sent it to, not what it may still do)."""
    for token in tokens:
        try:
            if read_token(secret, "unsubscribe", token)[0] == sub_id:
                return True
        except TokenError:
            continue
    return False
