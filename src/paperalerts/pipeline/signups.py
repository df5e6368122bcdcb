"""Sign-ups through the public form: recorded alike for every address, applied at the confirm.

The form's answer never says whether an address is known, and neither may the work behind it:
`record_signup` runs the same statements for a new, pending, active, paused, unsubscribed or
bounced address (an INSERT of a pending subscriber that does nothing when the address exists,
the SELECT of that row, the clean-up of its expired requests, the INSERT of the request and of
one audit row). What the form asked for (schedule, rules, topics) is kept in a
`signup_request` and applied only when the link emailed for that very request is confirmed,
because anyone can type any address: a returning subscriber gets what they entered (issue 17),
and nobody can change someone else's subscription by signing their address up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from paperalerts.core.schedule import Frequency, next_digest_at
from paperalerts.core.subscribers import Prefs
from paperalerts.core.tokens import make_payload_token, read_payload_token
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.bulk import insert_ignoring_conflicts
from paperalerts.errors import TokenError
from paperalerts.pipeline import subscriptions as subs

ACTOR = "signup"
#: Statuses whose sign-up gets a confirmation link (the others are told they are subscribed).
CONFIRMABLE = frozenset({"pending", "unsubscribed", "bounced"})


@dataclass(frozen=True)
class Recorded:
    """A stored sign-up: the subscriber row, the request, and the address's status before."""

    subscriber_id: int
    request_id: int
    status: str

    @property
    def needs_confirm(self) -> bool:
        return self.status in CONFIRMABLE


def record_signup(
    s: Session, addr: str, prefs: Prefs, rules: list[str], topics: set[int], now: datetime,
    *, keep: timedelta,
) -> Recorded:
    """Store a sign-up for the canonical address `addr` (rules already validated); a new
    address becomes a pending subscriber with `prefs`. Requests older than `keep` (the confirm
    link's lifetime) are removed. The same statements whatever the address's state."""
    insert_ignoring_conflicts(s, m.Subscriber, [{
        "email": addr, "status": "pending", "frequency": prefs.frequency,
        "send_hour": prefs.send_hour, "weekday": prefs.weekday, "timezone": prefs.timezone,
        "next_digest_at": next_digest_at(prefs.frequency, prefs.send_hour, prefs.weekday,
                                         prefs.timezone, now),
        "created_at": now}])
    sub = s.scalars(select(m.Subscriber).where(m.Subscriber.email == addr)).one()
    s.execute(delete(m.SignupRequest).where(m.SignupRequest.subscriber_id == sub.id,
                                            m.SignupRequest.created_at < now - keep))
    request = m.SignupRequest(
        subscriber_id=sub.id, frequency=prefs.frequency, send_hour=prefs.send_hour,
        weekday=prefs.weekday, timezone=prefs.timezone, rules=list(rules),
        topics=sorted(topics), created_at=now)
    s.add(request)
    s.flush()
    repo.audit(s, "signup", "subscriber", sub.id, None,
               {"request": request.id, "status": sub.status}, ACTOR)
    return Recorded(sub.id, request.id, sub.status)


def confirm_token(secret: str, sub: m.Subscriber, request_id: int, now: datetime) -> str:
    """The link token confirming sign-up request `request_id` of `sub`."""
    return make_payload_token(secret, "confirm", [sub.id, sub.token_version, request_id],
                              now=now)


@dataclass(frozen=True)
class ConfirmLink:
    """What a confirm link names: the subscriber, whether it was made for a sign-up request
    (links made before requests existed were not), and that request if it is still there (it
    is gone once confirmed, or expired)."""

    sub: m.Subscriber
    requested: bool
    request: m.SignupRequest | None


def from_confirm_token(s: Session, secret: str, token: str, max_age: float) -> ConfirmLink:
    """Read a confirm link. TokenError as `subscriptions.from_token`."""
    payload = read_payload_token(secret, "confirm", token, max_age)
    sub = s.get(m.Subscriber, payload[0])
    if sub is None or sub.token_version != payload[1]:
        raise TokenError("this link is no longer valid", reason="revoked")
    extra: list[Any] = payload[2:]
    request = None
    if extra and isinstance(extra[0], int) and not isinstance(extra[0], bool):
        found = s.get(m.SignupRequest, extra[0])
        request = found if found is not None and found.subscriber_id == sub.id else None
    elif extra:
        raise TokenError("the confirm link carries an unexpected payload", reason="malformed")
    return ConfirmLink(sub, bool(extra), request)


def confirm_signup(s: Session, link: ConfirmLink, now: datetime) -> str:
    """Apply a confirmed sign-up: its schedule, rules (replacing the old ones) and topics, and
    make the subscription active again, bounce score reset; the request and older ones are
    used up. Returns ``confirmed`` or ``already-confirmed`` (an active subscription whose link
    was used before). A link made for a request that is gone cannot reopen a closed
    subscription (NotAllowed); a link made without one confirms a pending subscription, as
    links did before requests existed."""
    sub, request = link.sub, link.request
    if request is None:
        if sub.status in ("active", "paused"):
            return "already-confirmed"
        if link.requested:
            raise subs.NotAllowed("status", "this confirmation link was used or has expired; "
                                  "sign up again for a new one")
        subs.confirm(s, sub, now)
        return "confirmed"
    prefs = Prefs(cast(Frequency, request.frequency), request.send_hour, request.weekday,
                  request.timezone)
    subs.update_subscriber(s, sub, now, "subscriber", prefs=prefs)
    subs.replace_rules(s, sub, list(request.rules), "subscriber", now)
    subs.set_topics(s, sub, {int(t) for t in request.topics}, "subscriber")
    sub.bounce_score = 0
    subs.set_status(s, sub, "active", now, "subscriber")
    s.execute(delete(m.SignupRequest).where(m.SignupRequest.subscriber_id == sub.id,
                                            m.SignupRequest.created_at <= request.created_at))
    return "confirmed"


def describe(s: Session, sub: m.Subscriber, request: m.SignupRequest) -> dict[str, Any]:
    """What confirming `request` will do, for the confirm page: the schedule, rules and topic
    names it sets, and whether it replaces an earlier subscription's."""
    names = list(s.scalars(select(m.Topic.name).where(
        m.Topic.id.in_([int(t) for t in request.topics]), m.Topic.public.is_(True))
        .order_by(m.Topic.name)))
    had = bool(s.scalars(select(m.Rule.id).where(m.Rule.subscriber_id == sub.id)).first()) \
        or bool(subs.topic_ids(s, sub.id))
    return {"frequency": request.frequency, "send_hour": request.send_hour,
            "weekday": request.weekday, "timezone": request.timezone,
            "rules": list(request.rules), "topics": names,
            "returning": sub.status in ("unsubscribed", "bounced") or (had and sub.confirmed_at
                                                                       is not None)}
