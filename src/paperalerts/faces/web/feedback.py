"""One-click feedback from the email (issue 13): ``/f/TOKEN/ACTION`` and its undo ``/fu/TOKEN``.

GET shows one button (mail scanners prefetch links; a GET changes nothing). POST applies the
action, says what changed and offers an undo (its own single-use token). A link applied before is
refused with 409 and a pointer to the manage page, where feedback can be changed at any time.
The manage page's feedback section posts to ``/manage/TOKEN/feedback`` and ``.../authors/ID``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.core.feedback import (
    ACTIONS,
    Action,
    FeedbackClaim,
    authors_of,
    make_undo_token,
    parse_action,
    read_feedback_token,
    read_undo_token,
)
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import InvalidInput, TokenError
from paperalerts.faces.web import feedback_ops as ops
from paperalerts.faces.web.context import WebContext, ctx
from paperalerts.faces.web.csrf import csrf_required
from paperalerts.faces.web.signed_links import link_error, manage_url
from paperalerts.faces.web.templating import page
from paperalerts.pipeline import subscriptions as subs

router = APIRouter()
manage_feedback = APIRouter(prefix="/manage/{token}", dependencies=[Depends(csrf_required)])
Csrf = Depends(csrf_required)
QUESTIONS = {
    "more": "Show you more papers like this one?",
    "less": "Mark this paper as not relevant to you?",
    "mute": "Mute an author of this paper? Their papers will no longer appear in your emails.",
    "follow": "Follow an author of this paper? A rule will send you every new paper of theirs.",
}
BUTTONS = {"more": "Yes, more like this", "less": "Yes, not relevant",
           "mute": "Mute this author", "follow": "Follow this author"}


def _max_age(context: WebContext) -> timedelta:
    return timedelta(days=context.settings.feedback_link_days)


def _claim(context: WebContext, s: Session, token: str, action: str
           ) -> tuple[FeedbackClaim, Action, m.Subscriber]:
    """The verified claim, action and subscriber; TokenError for a bad link (an unknown action
    is a malformed link), revoked when the token version moved on."""
    claim = read_feedback_token(context.secret, token, _max_age(context))
    try:
        act = parse_action(action)
    except ValueError as e:
        raise TokenError(str(e), reason="malformed") from e
    sub = s.get(m.Subscriber, claim.subscriber_id)
    if sub is None or sub.token_version != claim.token_version:
        raise TokenError("this link is no longer valid", reason="revoked")
    return claim, act, sub


def _refused(request: Request, e: TokenError) -> Response:
    return link_error(request, e)


def _replayed(request: Request, context: WebContext, sub: m.Subscriber, at: datetime
              ) -> Response:
    return page(request, "public/feedback_done.html", {
        "title": "This link was used already",
        "message": f"This feedback link was already used on {at:%d %b %Y at %H:%M} UTC, so it "
                   "changed nothing now. You can change your feedback on your preferences page.",
        "undo": None, "manage": manage_url(context, sub)}, status=409)


@router.get("/f/{token}/{action}")
def feedback_form(request: Request, token: str, action: str) -> Response:
    context = ctx(request)
    try:
        with context.factory() as s:
            claim, act, sub = _claim(context, s, token, action)
            if (used := ops.used(s, sub.id, claim.use_key(act))) is not None:
                return _replayed(request, context, sub, used.at)
            paper = repo.paper_values(s, [claim.paper_id]).get(claim.paper_id)
            email = sub.email
    except TokenError as e:
        return _refused(request, e)
    if paper is None:
        return page(request, "public/message.html", {
            "title": "Paper not found", "message": f"Paper {claim.paper_id} is no longer stored.",
            "signup": False}, status=404)
    return page(request, "public/feedback.html", {
        "paper": paper, "action": act, "question": QUESTIONS[act], "button": BUTTONS[act],
        "authors": authors_of(paper) if act in ("mute", "follow") else (), "email": email,
        "token": token})


@router.post("/f/{token}/{action}", dependencies=[Csrf])
def feedback_apply(
    request: Request, token: str, action: str,
    author: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    context = ctx(request)
    now = context.clock()
    try:
        with transaction(context.factory) as s:
            claim, act, sub = _claim(context, s, token, action)
            outcome = ops.apply(s, sub, claim.paper_id, act, now=now, author=author or None,
                                use_key=claim.use_key(act))
            manage = manage_url(context, sub)
            sid, version = sub.id, sub.token_version
            if isinstance(outcome, ops.Replayed):
                return _replayed(request, context, sub, outcome.at)
    except TokenError as e:
        return _refused(request, e)
    except InvalidInput as e:
        return page(request, "public/message.html", {
            "title": "Nothing changed", "message": e.message, "signup": False}, status=400)
    undo = make_undo_token(context.secret, sid, version, outcome.event_id)
    return page(request, "public/feedback_done.html", {
        "title": "Thanks, noted", "message": outcome.message, "undo": f"/fu/{undo}",
        "manage": manage})


@router.post("/fu/{token}", dependencies=[Csrf])
def feedback_undo(request: Request, token: str) -> Response:
    context = ctx(request)
    now = context.clock()
    try:
        with transaction(context.factory) as s:
            sid, version, event_id = read_undo_token(context.secret, token, _max_age(context))
            sub = s.get(m.Subscriber, sid)
            if sub is None or sub.token_version != version:
                raise TokenError("this link is no longer valid", reason="revoked")
            outcome = ops.undo(s, sub, event_id, now)
            manage = manage_url(context, sub)
            if isinstance(outcome, ops.Replayed):
                return _replayed(request, context, sub, outcome.at)
    except TokenError as e:
        return _refused(request, e)
    except InvalidInput as e:
        return page(request, "public/message.html", {
            "title": "Nothing changed", "message": e.message, "signup": False}, status=400)
    return page(request, "public/feedback_done.html", {
        "title": "Undone", "message": outcome.message, "undo": None, "manage": manage})


def manage_context(s: Session, sub_id: int) -> dict[str, Any]:
    """The manage page's feedback section: verdicts (newest first, with titles) and authors."""
    rows = list(s.scalars(select(m.Feedback).where(m.Feedback.subscriber_id == sub_id)
                          .order_by(m.Feedback.updated_at.desc(), m.Feedback.id.desc())))
    titles = dict(s.execute(select(m.Paper.id, m.Paper.title)
                            .where(m.Paper.id.in_([r.paper_id for r in rows]))).all())
    verdicts = [{"paper_id": r.paper_id, "title": titles.get(r.paper_id, r.paper_id),
                 "label": r.label, "at": r.updated_at} for r in rows]
    authors = list(s.scalars(select(m.AuthorPref).where(m.AuthorPref.subscriber_id == sub_id)
                             .order_by(m.AuthorPref.action, m.AuthorPref.author_name)))
    return {"verdicts": verdicts, "author_prefs": authors, "feedback_actions": ACTIONS}


def _manage_change(request: Request, token: str, action: Any) -> Response:
    context = ctx(request)
    try:
        with transaction(context.factory) as s:
            sub = subs.from_token(s, context.secret, "manage", token)
            action(s, sub, context.clock())
    except (TokenError, InvalidInput):
        return RedirectResponse(f"/manage/{token}", status_code=303)
    return RedirectResponse(f"/manage/{token}?done=feedback-saved#feedback", status_code=303)


@manage_feedback.post("/feedback")
def manage_label(
    request: Request, token: str,
    paper_id: Annotated[str, Form(max_length=200)],
    label: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    return _manage_change(request, token, lambda s, sub, now: ops.set_label(
        s, sub, paper_id, label, now))


@manage_feedback.post("/authors/{pref_id:id}/delete")
def manage_author(request: Request, token: str, pref_id: int) -> Response:
    return _manage_change(request, token, lambda s, sub, now: ops.remove_author(
        s, sub, pref_id, now))
