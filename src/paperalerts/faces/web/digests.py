"""Digests seen from the web: the online view of a sent digest, the admin's message preview,
"send me a preview now", the sign-up confirmation email, and previews of what a rule matches.

Digests are rendered by the delivery pipeline's own `render_delivery` / `render_matches`, so the
web shows exactly what is mailed; sending goes through the `Mailer` the app was given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.core.digest import Segment, highlight, snippet
from paperalerts.core.message import build_message, mail_domain_of
from paperalerts.core.paper_links import paper_links
from paperalerts.core.papers import Paper
from paperalerts.core.render import Footer, Rendered, render_already, render_confirm
from paperalerts.core.rules import compile_rules, explanation_json
from paperalerts.core.subscribers import subscriber_links
from paperalerts.core.tokens import make_token
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import DeliveryError
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.web.context import WebContext
from paperalerts.pipeline.compose import render_delivery, render_matches
from paperalerts.pipeline.signups import confirm_token
from paperalerts.pipeline.subscriptions import topic_ids

log = logging.getLogger(__name__)
PREVIEW_DAYS = 7


def render_online(context: WebContext, s: Session, d: m.Delivery) -> Rendered:
    """A delivered digest or alert as it was mailed (rebuilt from the matches attached to it,
    by the delivery pipeline's own renderer)."""
    sub = s.get_one(m.Subscriber, d.subscriber_id)
    cfg = delivery_config(context.settings)
    return render_delivery(s, d, sub, cfg, d.sent_at or d.created_at)


def live_matches(s: Session, sub: m.Subscriber, now: datetime, days: int) -> list[m.Match]:
    """What the subscriber's rules and topics match among the last `days` days of papers, as
    unsaved match rows (the shape the renderer takes)."""
    queries: list[tuple[str, str]] = []
    owners: dict[str, dict[str, object]] = {}
    for r in s.scalars(select(m.Rule).where(m.Rule.subscriber_id == sub.id,
                                            m.Rule.enabled.is_(True))):
        queries.append((f"r{r.id}", r.normalized or r.query))
        owners[f"r{r.id}"] = {"rule_id": r.id, "topic_id": None, "name": r.name,
                              "query": r.query}
    q = select(m.Topic).join(m.SubscriberTopic, m.SubscriberTopic.topic_id == m.Topic.id)
    for t in s.scalars(q.where(m.SubscriberTopic.subscriber_id == sub.id,
                               m.Topic.enabled.is_(True))):
        queries.append((f"t{t.id}", t.normalized or t.query))
        owners[f"t{t.id}"] = {"rule_id": None, "topic_id": t.id, "name": t.name,
                              "query": t.query}
    if not queries:
        return []
    papers = recent_papers(s, now, days)
    per_paper: dict[str, list[dict[str, object]]] = {}
    for hit in compile_rules(queries).match(papers.values()):
        per_paper.setdefault(hit.paper_id, []).append(
            {**owners[str(hit.rule)], **explanation_json(hit)})
    return [m.Match(subscriber_id=sub.id, paper_id=pid, explanation={"rules": entries},
                    matched_at=now) for pid, entries in per_paper.items()]


def recent_papers(s: Session, now: datetime, days: int, limit: int = 3000) -> dict[str, Paper]:
    ids = list(s.scalars(
        select(m.Paper.id).where(m.Paper.first_seen_at >= now - timedelta(days=days))
        .order_by(m.Paper.first_seen_at.desc()).limit(limit)
    ))
    return repo.paper_values(s, ids)


def _mail_domain(context: WebContext) -> str:
    return context.settings.mail_domain or mail_domain_of(context.settings.mail_from)


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S%f")


def send_confirm(context: WebContext, sub_id: int, request_id: int) -> None:
    """Email the double opt-in link for sign-up request `request_id` and record it as a
    ``confirm`` delivery (sent or failed). Runs after the sign-up response went out, so its
    timing says nothing about the address."""
    now = context.clock()
    with context.factory() as s:
        sub = s.get(m.Subscriber, sub_id)
        if sub is None:
            return
        email = sub.email
        token = confirm_token(context.secret, sub, request_id, now)
    rendered = render_confirm(
        email=email,
        confirm_url=f"{context.base_url}/confirm/{token}",
        expires_hours=context.settings.confirm_max_age_hours,
        footer=Footer(reason=f"this address was entered in the sign-up form at {context.base_url}",
                      postal_address=context.settings.postal_address),
    )
    _send_once(context, sub_id, email, rendered, kind="confirm", key=f"confirm-{_stamp(now)}",
               message_key=f"confirm-{sub_id}-{_stamp(now)}", now=now)


def _send_once(
    context: WebContext, sub_id: int, email: str, rendered: Rendered, *, kind: str, key: str,
    message_key: str, now: datetime,
) -> None:
    """Send a one-off email (a confirmation, a notice) at once and record it as a delivery of
    `kind` and period `key`, sent or failed: no retry, the subscriber can ask again."""
    msg = build_message(
        rendered, from_addr=context.settings.mail_from, to_addr=email, to_name="",
        delivery_id=message_key, now=now, base_url=context.base_url,
        unsubscribe_token=None, list_id=None, mail_domain=_mail_domain(context),
    )
    error = None
    try:
        context.mailer().send(msg)
    except DeliveryError as e:
        error = str(e)
        log.warning("%s email to subscriber %s failed: %s", kind, sub_id, e)
    with transaction(context.factory) as s:
        s.add(m.Delivery(subscriber_id=sub_id, kind=kind, period_key=key,
                         status="failed" if error else "sent", attempts=1, last_error=error,
                         subject=rendered.subject, message_id=str(msg["Message-ID"]),
                         created_at=now, sent_at=None if error else now))


ALREADY_EVERY = timedelta(hours=24)


def send_already_subscribed(context: WebContext, sub_id: int, topics: list[int]) -> None:
    """Tell a subscribed address that someone signed it up again: a link to its preferences,
    with the `topics` ticked at sign-up ready to follow. At most one such email per address
    every `ALREADY_EVERY` (recorded as a ``notice`` delivery), so the form cannot be used to
    flood a subscriber. Runs after the (identical) sign-up answer went out: `topics` are the
    ticked ones, of which the public topics the subscriber does not follow yet are offered."""
    now = context.clock()
    with context.factory() as s:
        sub = s.get(m.Subscriber, sub_id)
        if sub is None:
            return
        topics = sorted(set(s.scalars(select(m.Topic.id).where(
            m.Topic.id.in_(topics), m.Topic.public.is_(True), m.Topic.enabled.is_(True))))
            - topic_ids(s, sub_id))
        recent = s.scalars(select(m.Delivery.id).where(
            m.Delivery.subscriber_id == sub_id, m.Delivery.kind == "notice",
            m.Delivery.created_at >= now - ALREADY_EVERY)).first()
        if recent is not None:
            log.info("already-subscribed notice to %s skipped: one sent recently", sub_id)
            return
        names = list(s.scalars(select(m.Topic.name).where(m.Topic.id.in_(topics))
                               .order_by(m.Topic.name)))
        email, version = sub.email, sub.token_version
    manage = subscriber_links(context.base_url, context.secret, sub_id, version,
                              now=now).manage
    follow = f"{manage}?follow={','.join(str(t) for t in sorted(topics))}" if names else manage
    rendered = render_already(
        email=email, manage_url=manage, follow_url=follow, topics=names,
        footer=Footer(reason=f"this address was entered in the sign-up form at {context.base_url}",
                      postal_address=context.settings.postal_address, manage_url=manage))
    stamp = _stamp(now)
    _send_once(context, sub_id, email, rendered, kind="notice", key=f"already-{stamp}",
               message_key=f"notice-{sub_id}-{stamp}", now=now)


def send_preview(context: WebContext, sub_id: int) -> int:
    """Email the subscriber a digest of their recent papers now (their matches of the last
    `PREVIEW_DAYS` days, else what their rules match among that many days of papers).
    Returns the number of papers; raises DeliveryError when the mail server refuses."""
    now = context.clock()
    cfg = delivery_config(context.settings)
    with context.factory() as s:
        sub = s.get_one(m.Subscriber, sub_id)
        rows = list(s.scalars(select(m.Match).where(
            m.Match.subscriber_id == sub_id,
            m.Match.matched_at >= now - timedelta(days=PREVIEW_DAYS)).order_by(m.Match.id)))
        rows = rows or live_matches(s, sub, now, PREVIEW_DAYS)
        manage = subscriber_links(context.base_url, context.secret, sub.id,
                                  sub.token_version, now=now).manage
        rendered = render_matches(s, sub, rows, cfg, now, online_url=manage, preview=True)
        email, name, version = sub.email, sub.name, sub.token_version
        s.expunge_all()  # the unsaved live rows must never be flushed
    rendered = Rendered("Preview: " + rendered.subject, rendered.text, rendered.html)
    msg = build_message(
        rendered, from_addr=cfg.mail_from, to_addr=email, to_name=name,
        delivery_id=f"preview-{sub_id}-{_stamp(now)}", now=now, base_url=cfg.base_url,
        unsubscribe_token=make_token(context.secret, "unsubscribe", sub_id, version, now=now),
        list_id=f"digest.{cfg.mail_domain}", mail_domain=cfg.mail_domain,
    )
    context.mailer().send(msg)
    return len({r.paper_id for r in rows})


@dataclass(frozen=True)
class PreviewItem:
    """A paper a rule would have matched, with the matched words highlighted."""

    paper_id: str
    url: str
    title: tuple[Segment, ...]
    snippet: tuple[Segment, ...]
    terms: tuple[str, ...]
    authors: str
    published: datetime | None
    upvotes: int | None


@dataclass(frozen=True)
class RulePreview:
    normalized: str
    days: int
    papers_seen: int
    items: tuple[PreviewItem, ...]


def rule_preview(
    s: Session, query: str, normalized: str, now: datetime, days: int, limit: int = 100
) -> RulePreview:
    """The papers first seen in the last `days` days that the rule matches (at most `limit`)."""
    papers = recent_papers(s, now, days)
    hits = compile_rules([(1, normalized)]).match(papers.values())
    items = []
    for hit in hits[:limit]:
        p = papers[hit.paper_id]
        spans = {f: [(h.start, h.end) for h in hit.hits if h.field == f]
                 for f in ("title", "abstract")}
        items.append(PreviewItem(
            p.id, paper_links(p)[0], highlight(p.title, spans["title"]),
            snippet(p.abstract, spans["abstract"]),
            hit.terms, ", ".join(p.authors[:6]) + (" et al." if len(p.authors) > 6 else ""),
            p.published, p.upvotes,
        ))
    return RulePreview(normalized, days, len(papers), tuple(items))

