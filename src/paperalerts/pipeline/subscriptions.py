"""The subscriptions service: every change to a subscriber, their rules and their topics, for
the public pages, the admin, the JSON API, the CLI and the mailbox reader alike.

Each function works inside the caller's transaction, takes `now` and an `actor` (who, for the
audit row), validates through the pure `core.subscribers` helpers and raises `InvalidInput`
(field, message, position) for a value it cannot use; faces translate that into a form error, a
422/409, or an exit code. Whatever changes what gets matched (rules, topics, follows, deletion)
bumps the rules version in the same transaction, so the matcher rebuilds its index; the session
hooks in `edges.db.repo` back this up for writes that bypass this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from paperalerts.core.schedule import Frequency, next_digest_at
from paperalerts.core.subscribers import MAX_RULES, STATUSES, normalize_email

# The validators every face needs alongside the service, re-exported so a face imports one name.
from paperalerts.core.subscribers import Prefs as Prefs
from paperalerts.core.subscribers import check_rule as check_rule
from paperalerts.core.subscribers import parse_prefs as parse_prefs
from paperalerts.core.subscribers import parse_rule_lines as parse_rule_lines
from paperalerts.core.tokens import Purpose, read_token
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.errors import InvalidInput, TokenError

NEW_STATUSES = ("pending", "active", "paused")


class AlreadyExists(InvalidInput):
    """The address (or topic name) belongs to another row already (an API answers 409)."""


class NotAllowed(InvalidInput):
    """The change does not apply to the subscription in its present state (e.g. pausing a
    pending one, confirming an unsubscribed one)."""


# --- what the audit log records ------------------------------------------------------------


def subscriber_state(sub: m.Subscriber) -> dict[str, Any]:
    return {
        "email": sub.email, "name": sub.name, "status": sub.status, "frequency": sub.frequency,
        "send_hour": sub.send_hour, "weekday": sub.weekday, "timezone": sub.timezone,
    }


def rule_state(rule: m.Rule) -> dict[str, Any]:
    return {"subscriber_id": rule.subscriber_id, "query": rule.query, "name": rule.name,
            "enabled": rule.enabled}


def topic_state(topic: m.Topic) -> dict[str, Any]:
    return {"name": topic.name, "description": topic.description, "query": topic.query,
            "public": topic.public, "enabled": topic.enabled}


# --- finding a subscriber --------------------------------------------------------------------


def parse_email(raw: str) -> str:
    """The canonical address, or InvalidInput("email", why)."""
    return normalize_email(raw)


def by_email(s: Session, email: str) -> m.Subscriber | None:
    return s.scalars(select(m.Subscriber).where(m.Subscriber.email == email)).first()


def existing(s: Session, raw_email: str) -> m.Subscriber:
    """The subscriber with this address; InvalidInput("email") when there is none."""
    addr = normalize_email(raw_email)
    sub = by_email(s, addr)
    if sub is None:
        raise InvalidInput("email", f"no subscriber {addr}")
    return sub


def from_token(
    s: Session, secret: str, purpose: Purpose, token: str, max_age: float | None = None
) -> m.Subscriber:
    """The subscriber a signed link names. TokenError (reason ``malformed``, ``tampered``,
    ``expired``, ``wrong_purpose``, or ``revoked`` for an old token version or a deleted
    subscriber) otherwise."""
    sid, version = read_token(secret, purpose, token, max_age)
    sub = s.get(m.Subscriber, sid)
    if sub is None or sub.token_version != version:
        raise TokenError("this link is no longer valid", reason="revoked")
    return sub


def topic_ids(s: Session, sub_id: int) -> set[int]:
    q = select(m.SubscriberTopic.topic_id).where(m.SubscriberTopic.subscriber_id == sub_id)
    return set(s.scalars(q))


# --- subscriber lifecycle --------------------------------------------------------------------


def apply_prefs(sub: m.Subscriber, prefs: Prefs, now: datetime) -> None:
    """Set the schedule and recompute the next digest time in the subscriber's zone."""
    sub.frequency = prefs.frequency
    sub.send_hour = prefs.send_hour
    sub.weekday = prefs.weekday
    sub.timezone = prefs.timezone
    sub.next_digest_at = next_digest_at(
        prefs.frequency, prefs.send_hour, prefs.weekday, prefs.timezone, now
    )


def create_subscriber(
    s: Session, email: str, prefs: Prefs, now: datetime, actor: str, *, status: str = "pending",
    name: str = "", rules: Iterable[str] = (), topics: Iterable[int] = (),
    public_only: bool = True,
) -> m.Subscriber:
    """A new subscriber (pending, active or paused) with its rules and followed topics.
    AlreadyExists when the address is taken; InvalidInput for a bad address, status or rule."""
    addr = normalize_email(email)
    if by_email(s, addr) is not None:
        raise AlreadyExists("email", f"{addr} is already a subscriber")
    if status not in NEW_STATUSES:
        raise InvalidInput("status", f"a new subscriber is {', '.join(NEW_STATUSES)}, "
                           f"not {status!r}")
    sub = m.Subscriber(email=addr, name=name.strip()[:200], status=status, created_at=now,
                       confirmed_at=now if status == "active" else None)
    apply_prefs(sub, prefs, now)
    s.add(sub)
    s.flush()
    repo.audit(s, "create", "subscriber", sub.id, None, subscriber_state(sub), actor)
    for query in rules:
        add_rule(s, sub, query, "", actor, now)
    set_topics(s, sub, set(topics), actor, public_only=public_only)
    return sub


def update_subscriber(
    s: Session, sub: m.Subscriber, now: datetime, actor: str, *, email: str | None = None,
    name: str | None = None, prefs: Prefs | None = None,
) -> None:
    """Change the address, name and/or schedule (None = keep); one audit row for the lot."""
    before = subscriber_state(sub)
    if email is not None:
        addr = normalize_email(email)
        other = by_email(s, addr)
        if other is not None and other.id != sub.id:
            raise AlreadyExists("email", f"{addr} belongs to another subscriber")
        sub.email = addr
    if name is not None:
        sub.name = name.strip()[:200]
    if prefs is not None:
        apply_prefs(sub, prefs, now)
    if before != subscriber_state(sub):
        repo.audit(s, "update", "subscriber", sub.id, before, subscriber_state(sub), actor)


def set_status(s: Session, sub: m.Subscriber, status: str, now: datetime, actor: str) -> None:
    """Move a subscriber to `status`; an unsubscribe is recorded with its time, a return to
    active gets a fresh next digest time."""
    if status not in STATUSES:
        raise InvalidInput("status", f"status must be one of {', '.join(STATUSES)}, "
                           f"not {status!r}")
    if sub.status == status:
        return
    before = subscriber_state(sub)
    sub.status = status
    if status == "unsubscribed":
        sub.unsubscribed_at = now
    if status == "active":
        sub.confirmed_at = sub.confirmed_at or now
        sub.next_digest_at = next_digest_at(
            cast(Frequency, sub.frequency), sub.send_hour, sub.weekday, sub.timezone, now
        )
    repo.audit(s, "status", "subscriber", sub.id, before, subscriber_state(sub), actor)


def confirm(s: Session, sub: m.Subscriber, now: datetime, actor: str = "subscriber") -> None:
    """Double opt-in: pending -> active (an active one stays). NotAllowed for a subscription
    that was closed (unsubscribed or bounced) since the link was sent."""
    if sub.status in ("unsubscribed", "bounced"):
        raise NotAllowed("status", f"this subscription is {sub.status}")
    if sub.status == "pending":
        set_status(s, sub, "active", now, actor)


def pause(s: Session, sub: m.Subscriber, now: datetime, actor: str) -> None:
    if sub.status != "active":
        raise NotAllowed("status", f"only an active subscription can be paused "
                         f"(this one is {sub.status})")
    set_status(s, sub, "paused", now, actor)


def resume(s: Session, sub: m.Subscriber, now: datetime, actor: str) -> None:
    """Resume a paused subscription, or resubscribe after an unsubscribe or bounce (the link
    proves the mailbox, so no new confirmation is needed); the bounce score starts again."""
    if sub.status == "pending":
        raise NotAllowed("status", "confirm your subscription with the emailed link first")
    sub.bounce_score = 0
    set_status(s, sub, "active", now, actor)


def unsubscribe(s: Session, sub: m.Subscriber, now: datetime, actor: str) -> None:
    """Takes effect at once and is idempotent."""
    set_status(s, sub, "unsubscribed", now, actor)


def record_bounce(
    s: Session, sub: m.Subscriber, now: datetime, actor: str, *, hard: bool, threshold: int
) -> None:
    """A hard bounce or complaint suppresses the address at once; a soft bounce adds one to the
    bounce score and suppresses it when the score reaches `threshold`. An unsubscribed address
    stays unsubscribed (its own choice says more than a bounce)."""
    before = subscriber_state(sub) | {"bounce_score": sub.bounce_score}
    sub.bounce_score = max(sub.bounce_score + 1, threshold if hard else 0)
    if sub.bounce_score >= threshold and sub.status != "unsubscribed":
        sub.status = "bounced"
    repo.audit(s, "bounce", "subscriber", sub.id, before,
               subscriber_state(sub) | {"bounce_score": sub.bounce_score}, actor)


def reset_links(s: Session, sub: m.Subscriber, now: datetime, actor: str) -> None:
    """Revoke every link sent so far (manage, unsubscribe, feed, and the online views of
    digests sent before `now`) by bumping the token version."""
    sub.token_version += 1
    sub.links_reset_at = now
    repo.audit(s, "reset_links", "subscriber", sub.id, {"token_version": sub.token_version - 1},
               {"token_version": sub.token_version}, actor)


def view_revoked(sub: m.Subscriber, delivery: m.Delivery) -> bool:
    """Whether the online view of `delivery` predates the subscriber's last link reset (its
    page would hand out links newer than the email it was opened from)."""
    sent = delivery.sent_at or delivery.created_at
    return sub.links_reset_at is not None and sent <= sub.links_reset_at


def delete_subscriber(s: Session, sub: m.Subscriber, actor: str) -> None:
    """Delete a subscriber with everything about them: rules, follows, matches, deliveries."""
    repo.audit(s, "delete", "subscriber", sub.id, subscriber_state(sub), None, actor)
    for model in (m.Match, m.Delivery, m.Rule, m.SubscriberTopic, m.SignupRequest):
        s.execute(delete(model).where(model.subscriber_id == sub.id))
    s.delete(sub)
    repo.bump_rules_version(s)


# --- rules and topics ------------------------------------------------------------------------


def add_rule(
    s: Session, sub: m.Subscriber, query: str, name: str, actor: str, now: datetime,
    *, enabled: bool = True,
) -> m.Rule:
    """Add one validated rule; InvalidInput("query") for a bad one or past MAX_RULES."""
    normalized = check_rule(query)
    count = s.scalar(select(func.count()).select_from(m.Rule)
                     .where(m.Rule.subscriber_id == sub.id)) or 0
    if count >= MAX_RULES:
        raise InvalidInput("query", f"a subscriber can have at most {MAX_RULES} rules")
    rule = m.Rule(subscriber_id=sub.id, query=query.strip(), normalized=normalized,
                  name=name.strip()[:200], enabled=enabled, created_at=now, updated_at=now)
    s.add(rule)
    s.flush()
    repo.audit(s, "create", "rule", rule.id, None, rule_state(rule), actor)
    repo.bump_rules_version(s)
    return rule


def edit_rule(
    s: Session, rule: m.Rule, query: str, name: str, enabled: bool, actor: str, now: datetime
) -> None:
    normalized = check_rule(query)
    before = rule_state(rule)
    rule.query, rule.normalized, rule.name, rule.enabled = query.strip(), normalized, \
        name.strip()[:200], enabled
    if before != rule_state(rule):
        rule.updated_at = now
        repo.audit(s, "update", "rule", rule.id, before, rule_state(rule), actor)
        repo.bump_rules_version(s)


def delete_rule(s: Session, rule: m.Rule, actor: str) -> None:
    repo.audit(s, "delete", "rule", rule.id, rule_state(rule), None, actor)
    s.delete(rule)
    repo.bump_rules_version(s)


def replace_rules(
    s: Session, sub: m.Subscriber, queries: Iterable[str], actor: str, now: datetime
) -> None:
    """Make `queries` the subscriber's whole rule list (a sign-up submitted again)."""
    for old in list(s.scalars(select(m.Rule).where(m.Rule.subscriber_id == sub.id))):
        delete_rule(s, old, actor)
    s.flush()
    for query in queries:
        add_rule(s, sub, query, "", actor, now)


def set_topics(
    s: Session, sub: m.Subscriber, wanted: set[int], actor: str, *, public_only: bool = True
) -> None:
    """Follow exactly `wanted` (unknown ids, and non-public topics when `public_only`, are
    ignored; non-public topics already followed stay when `public_only`)."""
    q = select(m.Topic.id)
    if public_only:
        q = q.where(m.Topic.public.is_(True))
    allowed = set(s.scalars(q))
    current = topic_ids(s, sub.id)
    target = (wanted & allowed) | (current - allowed)
    if target == current:
        return
    s.execute(delete(m.SubscriberTopic).where(
        m.SubscriberTopic.subscriber_id == sub.id,
        m.SubscriberTopic.topic_id.in_(current - target),
    ))
    s.add_all(m.SubscriberTopic(subscriber_id=sub.id, topic_id=t) for t in target - current)
    repo.audit(s, "update", "subscriber_topics", sub.id, {"topics": sorted(current)},
               {"topics": sorted(target)}, actor)
    repo.bump_rules_version(s)


def save_topic(
    s: Session, topic: m.Topic | None, now: datetime, actor: str, *, name: str, query: str,
    description: str = "", public: bool = True, enabled: bool = True,
) -> m.Topic:
    """Create (`topic` None) or edit a topic; a changed rule applies to all its followers."""
    if not name.strip():
        raise InvalidInput("name", "a topic needs a name")
    normalized = check_rule(query)
    clash = s.scalars(select(m.Topic).where(m.Topic.name == name.strip())).first()
    if clash is not None and clash is not topic:
        raise AlreadyExists("name", f"a topic named {name.strip()!r} exists already")
    before = topic_state(topic) if topic else None
    if topic is None:
        topic = m.Topic(name=name.strip(), query=query.strip(), normalized=normalized,
                        created_at=now)
        s.add(topic)
    topic.name, topic.description = name.strip(), description.strip()
    topic.query, topic.normalized = query.strip(), normalized
    topic.public, topic.enabled, topic.updated_at = public, enabled, now
    s.flush()
    if before != topic_state(topic):
        repo.audit(s, "update" if before else "create", "topic", topic.id, before,
                   topic_state(topic), actor)
        repo.bump_rules_version(s)
    return topic


def delete_topic(s: Session, topic: m.Topic, actor: str) -> None:
    """Delete a topic; its follows go with it (and with them, its matching)."""
    repo.audit(s, "delete", "topic", topic.id, topic_state(topic), None, actor)
    s.execute(delete(m.SubscriberTopic).where(m.SubscriberTopic.topic_id == topic.id))
    s.delete(topic)
    repo.bump_rules_version(s)
