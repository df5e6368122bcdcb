"""Subscriber and rule changes shared by the public pages, the admin and the API.

Each function works inside the caller's transaction and writes an audit row (who, before,
after); whatever changes what gets matched (rules, topics, follows, deletion) also bumps the rules
version in the same transaction so the matcher rebuilds its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast
from zoneinfo import available_timezones

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from paperalerts.core.rules import parse, to_text
from paperalerts.core.schedule import Frequency, next_digest_at
from paperalerts.core.subscribers import FREQUENCIES, STATUSES, InvalidAddress, normalize_email
from paperalerts.core.tokens import Purpose, read_token
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.errors import RuleError, TokenError

MAX_RULES = 50


class FormError(ValueError):
    """A submitted value that cannot be used: `field` names it; `position` is the character
    offset of a rule error inside that field, when there is one."""

    def __init__(self, field: str, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.field, self.message, self.position = field, message, position


@dataclass(frozen=True)
class Prefs:
    frequency: Frequency
    send_hour: int
    weekday: int
    timezone: str


def parse_email(raw: str) -> str:
    """`normalize_email` for forms: the address, or FormError("email", why)."""
    try:
        return normalize_email(raw)
    except InvalidAddress as e:
        raise FormError("email", str(e)) from e


def _int(field: str, raw: str | int, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise FormError(field, f"{field} must be a number from {lo} to {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise FormError(field, f"{field} must be from {lo} to {hi}, got {value}")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_prefs(frequency: str, hour: str | int, weekday: str | int, timezone: str) -> Prefs:
    """Schedule preferences from form or JSON values; FormError naming the bad field."""
    if frequency not in FREQUENCIES:
        raise FormError("frequency", f"frequency must be one of {', '.join(FREQUENCIES)}")
    tz = (timezone or "UTC").strip()
    # Checked against the list first: zoneinfo raises IsADirectoryError for "America".
    if tz not in _zones():
        raise FormError("timezone", f"unknown timezone {tz!r} (expected an IANA name like "
                        "'Europe/Berlin')")
    return Prefs(
        cast(Frequency, frequency),
        _int("hour", hour, 0, 23),
        _int("weekday", weekday, 0, 6),
        tz,
    )


def check_rule(query: str, field: str = "query") -> str:
    """The normalised form of a rule; FormError with the parser's message and position."""
    try:
        return to_text(parse(query))
    except RuleError as e:
        hint = f" — {e.hint}" if e.hint else ""
        raise FormError(field, f"{e.reason} at {e.position}{hint}", e.position) from e


def parse_rule_lines(text: str) -> list[tuple[str, str]]:
    """One rule per non-blank line -> [(query, normalised)]; a FormError names the line and its
    position is the offset into the whole text."""
    out: list[tuple[str, str]] = []
    offset = 0
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        query = line.strip()
        if query:
            try:
                out.append((query, check_rule(query, "rules")))
            except FormError as e:
                lead = len(line) - len(line.lstrip())
                pos = offset + lead + (e.position or 0)
                raise FormError("rules", f"line {n}: {e.message}", pos) from e
        offset += len(line)
    if len(out) > MAX_RULES:
        raise FormError("rules", f"at most {MAX_RULES} rules, got {len(out)}")
    return out


def subscriber_state(sub: m.Subscriber) -> dict[str, Any]:
    """What the audit log records of a subscriber."""
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


def by_email(s: Session, email: str) -> m.Subscriber | None:
    return s.scalars(select(m.Subscriber).where(m.Subscriber.email == email)).first()


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


def apply_prefs(sub: m.Subscriber, prefs: Prefs, now: datetime) -> None:
    sub.frequency = prefs.frequency
    sub.send_hour = prefs.send_hour
    sub.weekday = prefs.weekday
    sub.timezone = prefs.timezone
    sub.next_digest_at = next_digest_at(
        prefs.frequency, prefs.send_hour, prefs.weekday, prefs.timezone, now
    )


def update_prefs(s: Session, sub: m.Subscriber, prefs: Prefs, now: datetime, actor: str) -> None:
    before = subscriber_state(sub)
    apply_prefs(sub, prefs, now)
    if before != subscriber_state(sub):
        repo.audit(s, "update", "subscriber", sub.id, before, subscriber_state(sub), actor)


def topic_ids(s: Session, sub_id: int) -> set[int]:
    q = select(m.SubscriberTopic.topic_id).where(m.SubscriberTopic.subscriber_id == sub_id)
    return set(s.scalars(q))


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


def add_rule(
    s: Session, sub: m.Subscriber, query: str, name: str, actor: str, now: datetime
) -> m.Rule:
    normalized = check_rule(query)
    count = len(list(s.scalars(select(m.Rule.id).where(m.Rule.subscriber_id == sub.id))))
    if count >= MAX_RULES:
        raise FormError("query", f"a subscriber can have at most {MAX_RULES} rules")
    rule = m.Rule(subscriber_id=sub.id, query=query.strip(), normalized=normalized,
                  name=name.strip()[:200], created_at=now, updated_at=now)
    s.add(rule)
    s.flush()
    repo.audit(s, "create", "rule", rule.id, None, rule_state(rule), actor)
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


def delete_rule(s: Session, rule: m.Rule, actor: str) -> None:
    repo.audit(s, "delete", "rule", rule.id, rule_state(rule), None, actor)
    s.delete(rule)


def set_status(s: Session, sub: m.Subscriber, status: str, now: datetime, actor: str) -> None:
    """Move a subscriber to `status`; an unsubscribe is recorded with its time, a return to
    active gets a fresh next digest time."""
    if status not in STATUSES:
        raise FormError("status", f"status must be one of {', '.join(STATUSES)}")
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


def delete_subscriber(s: Session, sub: m.Subscriber, actor: str) -> None:
    """Delete a subscriber with everything about them: rules, follows, matches, deliveries."""
    repo.audit(s, "delete", "subscriber", sub.id, subscriber_state(sub), None, actor)
    for model in (m.Match, m.Delivery, m.Rule, m.SubscriberTopic):
        s.execute(delete(model).where(model.subscriber_id == sub.id))
    s.delete(sub)
    repo.bump_rules_version(s)


def create_subscriber(
    s: Session, email: str, prefs: Prefs, now: datetime, actor: str, *, status: str = "pending",
    name: str = "",
) -> m.Subscriber:
    sub = m.Subscriber(email=email, name=name.strip()[:200], status=status, created_at=now,
                       confirmed_at=now if status == "active" else None)
    apply_prefs(sub, prefs, now)
    s.add(sub)
    s.flush()
    repo.audit(s, "create", "subscriber", sub.id, None, subscriber_state(sub), actor)
    return sub
