"""Feedback changes (issue 13), inside the caller's transaction: set or clear a paper's verdict,
mute or follow an author, undo. Every change is a `FeedbackEvent` with the state before and after,
so undo restores exactly what was there; a follow owns the ``author:"..."`` rule it creates.

Replay protection: an event made through an email link records that link's ``use_key``, unique
per subscriber; applying the same link again returns `Replayed` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from paperalerts.core.feedback import Action, Author, authors_of, find_author, follow_rule
from paperalerts.core.papers import Paper
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.errors import InvalidInput
from paperalerts.pipeline import subscriptions as subs

State = dict[str, Any] | None


@dataclass(frozen=True)
class Applied:
    """A change made: the event (for its undo link) and a sentence saying what changed."""

    event_id: int
    message: str


@dataclass(frozen=True)
class Replayed:
    """The link was applied already (at `at`); nothing changed."""

    at: datetime


def paper_of(s: Session, paper_id: str) -> Paper:
    """The stored paper, or InvalidInput("paper", ...) when it is gone."""
    found = repo.paper_values(s, [paper_id]).get(paper_id)
    if found is None:
        raise InvalidInput("paper", f"paper {paper_id} is no longer stored")
    return found


def _label_state(s: Session, sub_id: int, paper_id: str) -> m.Feedback | None:
    return s.scalars(select(m.Feedback).where(
        m.Feedback.subscriber_id == sub_id, m.Feedback.paper_id == paper_id)).first()


def _pref(s: Session, sub_id: int, key: str) -> m.AuthorPref | None:
    return s.scalars(select(m.AuthorPref).where(
        m.AuthorPref.subscriber_id == sub_id, m.AuthorPref.author_key == key)).first()


def _origin(s: Session, sub_id: int, paper_id: str) -> tuple[int | None, int | None, bool]:
    """The rule and topic that brought the paper, and whether it was a recommendation."""
    match = s.scalars(select(m.Match).where(
        m.Match.subscriber_id == sub_id, m.Match.paper_id == paper_id)).first()
    if match is not None:
        return match.rule_id, match.topic_id, False
    rec = s.scalars(select(m.Recommendation.id).where(
        m.Recommendation.subscriber_id == sub_id, m.Recommendation.paper_id == paper_id)).first()
    return None, None, rec is not None


def _put_label(s: Session, sub: m.Subscriber, paper_id: str, state: State, via: str,
               now: datetime) -> None:
    row = _label_state(s, sub.id, paper_id)
    if state is None:
        if row is not None:
            s.delete(row)
        return
    if row is None:
        rule_id, topic_id, recommended = _origin(s, sub.id, paper_id)
        row = m.Feedback(subscriber_id=sub.id, paper_id=paper_id, rule_id=rule_id,
                         topic_id=topic_id, recommended=recommended, created_at=now)
        s.add(row)
    row.label, row.via, row.updated_at = state["label"], via, now


def _pref_state(row: m.AuthorPref | None) -> State:
    if row is None:
        return None
    return {"key": row.author_key, "name": row.author_name, "hf_id": row.hf_id,
            "action": row.action}


def _put_pref(s: Session, sub: m.Subscriber, key: str, state: State, paper_id: str | None,
              now: datetime) -> None:
    """Make the author's preference `state` (None = none), creating or deleting the follow rule
    as the preference starts or stops being a follow."""
    row = _pref(s, sub.id, key)
    stops_following = state is None or state["action"] != "follow"
    if row is not None and row.action == "follow" and stops_following:
        if row.rule_id is not None and (rule := s.get(m.Rule, row.rule_id)) is not None:
            subs.delete_rule(s, rule, "subscriber")
        row.rule_id = None
    if state is None:
        if row is not None:
            s.delete(row)
        return
    if row is None:
        row = m.AuthorPref(subscriber_id=sub.id, author_key=key, created_at=now,
                           paper_id=paper_id)
        s.add(row)
    was_follow = row.action == "follow"
    row.author_name, row.hf_id, row.action = state["name"], state["hf_id"], state["action"]
    if state["action"] == "follow" and not was_follow:
        rule = subs.add_rule(s, sub, follow_rule(state["name"]), f"Follow: {state['name']}"[:200],
                             "subscriber", now)
        row.rule_id = rule.id


def _record(s: Session, sub: m.Subscriber, paper_id: str | None, action: str, use_key: str | None,
            before: State, after: State, now: datetime) -> m.FeedbackEvent | None:
    """The event row, in a savepoint: None when this link's use_key is recorded already."""
    event = m.FeedbackEvent(subscriber_id=sub.id, paper_id=paper_id, action=action,
                            use_key=use_key, before=before, after=after, at=now)
    try:
        with s.begin_nested():
            s.add(event)
            s.flush()
    except IntegrityError:
        return None
    return event


def used(s: Session, sub_id: int, use_key: str) -> m.FeedbackEvent | None:
    return s.scalars(select(m.FeedbackEvent).where(
        m.FeedbackEvent.subscriber_id == sub_id, m.FeedbackEvent.use_key == use_key)).first()


def _author(paper: Paper, wanted: str | None) -> Author:
    found = find_author(paper, wanted) if wanted else next(iter(authors_of(paper)), None)
    if found is None:
        raise InvalidInput("author", f"paper {paper.id} has no author {wanted or ''}".strip())
    return found


def apply(s: Session, sub: m.Subscriber, paper_id: str, action: Action, *, now: datetime,
          author: str | None = None, use_key: str | None = None, via: str = "email",
          ) -> Applied | Replayed:
    """Apply one feedback action on `paper_id` (`author`: the key or HF id of the author to mute
    or follow; default the first). Replayed when `use_key` was applied before."""
    if use_key is not None and (prior := used(s, sub.id, use_key)) is not None:
        return Replayed(prior.at)
    paper = paper_of(s, paper_id)
    title = paper.title if len(paper.title) <= 90 else paper.title[:89] + "…"
    if action in ("more", "less"):
        row = _label_state(s, sub.id, paper_id)
        before: State = None if row is None else {"label": row.label}
        after: State = {"label": action}
        message = (f"Saved: you want more papers like “{title}”." if action == "more"
                   else f"Saved: “{title}” was not relevant to you.")
    else:
        who = _author(paper, author)
        before = _pref_state(_pref(s, sub.id, who.key))
        after = {"key": who.key, "name": who.name, "hf_id": who.hf_id, "action": action}
        message = (f"Muted {who.name}: their papers no longer appear in your emails."
                   if action == "mute" else
                   f"Following {who.name}: the rule {follow_rule(who.name)} was added.")
    event = _record(s, sub, paper_id, action, use_key, before, after, now)
    if event is None:  # a concurrent click of the same link won the unique key
        prior = used(s, sub.id, use_key or "")
        return Replayed(prior.at if prior else now)
    _restore(s, sub, event, after, via, now)
    return Applied(event.id, message)


def _restore(s: Session, sub: m.Subscriber, event: m.FeedbackEvent, state: State, via: str,
             now: datetime) -> None:
    """Put the state an event touched into `state` (its after to apply, its before to undo)."""
    if event.action in ("more", "less", "clear"):
        _put_label(s, sub, event.paper_id or "", state, via, now)
    else:
        key = (event.after or event.before or {})["key"]
        _put_pref(s, sub, key, state, event.paper_id, now)


def undo(s: Session, sub: m.Subscriber, event_id: int, now: datetime) -> Applied | Replayed:
    """Reverse one event (restore its before-state). An event undone already is `Replayed`:
    the undo link, too, applies once."""
    event = s.get(m.FeedbackEvent, event_id)
    if event is None or event.subscriber_id != sub.id:
        raise InvalidInput("feedback", "there is no such feedback to undo")
    if event.undone_at is not None:
        return Replayed(event.undone_at)
    event.undone_at = now
    _restore(s, sub, event, event.before, "email", now)
    return Applied(event.id, "Undone: your feedback is as it was before.")


def set_label(s: Session, sub: m.Subscriber, paper_id: str, label: str, now: datetime) -> None:
    """From the manage page: set a verdict ("more" / "less") or clear it ("")."""
    if label not in ("more", "less", ""):
        raise InvalidInput("label", f"label must be more, less or empty, got {label!r}")
    row = _label_state(s, sub.id, paper_id)
    if row is None and label == "":
        return
    before: State = None if row is None else {"label": row.label}
    after: State = {"label": label} if label else None
    event = _record(s, sub, paper_id, label or "clear", None, before, after, now)
    assert event is not None  # no use_key, so no unique conflict
    _restore(s, sub, event, after, "manage", now)


def remove_author(s: Session, sub: m.Subscriber, pref_id: int, now: datetime) -> None:
    """From the manage page: forget a mute or a follow (a follow's rule goes with it)."""
    row = s.get(m.AuthorPref, pref_id)
    if row is None or row.subscriber_id != sub.id:
        raise InvalidInput("author", "no such muted or followed author")
    event = _record(s, sub, row.paper_id, row.action, None, _pref_state(row), None, now)
    assert event is not None
    _put_pref(s, sub, row.author_key, None, row.paper_id, now)
