"""The subscriber's preference page at ``/manage/{token}``: no login, the signed link is the key.

Rules (add, edit, delete; validated on submit, and live by the page's script), schedule
(frequency, hour, weekday, timezone), topics, pause/resume, and "send me a preview now".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.core.schedule import Frequency, next_digest_at, zone
from paperalerts.core.subscribers import subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import DeliveryError, InvalidInput, TokenError
from paperalerts.faces.web import flash
from paperalerts.faces.web.context import ctx
from paperalerts.faces.web.csrf import csrf_required
from paperalerts.faces.web.digests import send_preview
from paperalerts.faces.web.feedback import manage_context
from paperalerts.faces.web.signed_links import link_error
from paperalerts.faces.web.templating import page
from paperalerts.pipeline import subscriptions as subs

manage_router = APIRouter(prefix="/manage/{token}", dependencies=[Depends(csrf_required)])

NOTICES = {
    "confirmed": "Your subscription is confirmed. Welcome!",
    "saved": "Your preferences are saved.",
    "rule-added": "Rule added.",
    "rule-saved": "Rule saved.",
    "rule-deleted": "Rule deleted.",
    "paused": "Paused: no emails until you resume.",
    "resumed": "You are subscribed again.",
    "already-confirmed": "Your subscription was already confirmed.",
    "feedback-saved": "Your feedback is saved.",
}


def _view(
    request: Request, token: str, *, status: int = 200, error: InvalidInput | None = None,
    form: dict[str, Any] | None = None, notice: str | None = None,
) -> Response:
    context = ctx(request)
    try:
        with context.factory() as s:
            sub = subs.from_token(s, context.secret, "manage", token)
            rules = list(s.scalars(select(m.Rule).where(m.Rule.subscriber_id == sub.id)
                                   .order_by(m.Rule.id)))
            followed = subs.topic_ids(s, sub.id)
            feedback = manage_context(s, sub.id)
            topics = list(s.scalars(select(m.Topic).where(
                (m.Topic.public.is_(True) & m.Topic.enabled.is_(True)) | m.Topic.id.in_(followed)
            ).order_by(m.Topic.name)))
    except TokenError as e:
        return link_error(request, e)
    links = subscriber_links(context.base_url, context.secret, sub.id, sub.token_version,
                             now=context.clock())
    done = request.query_params.get("done", "")
    ticked = followed | _wanted_topics(request, {t.id for t in topics})
    return page(request, "public/manage.html", {
        "sub": sub, "rules": rules, "topics": topics, "followed": followed, "token": token,
        "ticked": ticked, "links": links, "error": error, "form": form or {},
        "notice": notice or NOTICES.get(done), **feedback,
        "next_digest": next_digest_text(sub, context.clock()),
    }, status=status)


def _wanted_topics(request: Request, offered: set[int]) -> set[int]:
    """Topics named in ``?follow=1,2`` (the "already subscribed" email links here with the
    topics ticked at sign-up): shown ticked, followed only once the subscriber saves."""
    raw = request.query_params.get("follow", "")
    return {int(p) for p in raw.split(",") if p.strip().isdigit()} & offered


def next_digest_text(sub: m.Subscriber, now: datetime) -> str | None:
    """``Tue 08:00`` (the subscriber's local time; with the date when it is a week or more
    away), "as soon as papers match" for instant alerts, None when nothing will be sent."""
    if sub.status != "active":
        return None
    if sub.frequency == "instant":
        return "as soon as papers match"
    try:
        at = sub.next_digest_at
        if at is None or at <= now:
            at = next_digest_at(cast(Frequency, sub.frequency), sub.send_hour, sub.weekday,
                                sub.timezone, now)
        local = at.astimezone(zone(sub.timezone))
    except ValueError:
        return None
    text = local.strftime("%a %H:%M")
    if at - now >= timedelta(days=6):
        text = local.strftime("%a %d %b %H:%M")
    return text


def _done(token: str, what: str) -> Response:
    return RedirectResponse(f"/manage/{token}?done={what}", status_code=303)


def _change(request: Request, token: str, action: Any, done: str,
            form: dict[str, Any] | None = None) -> Response:
    """Run `action(session, subscriber, now)` in one transaction; a InvalidInput re-renders the
    page with the error, a bad link shows the link error."""
    context = ctx(request)
    try:
        with transaction(context.factory) as s:
            sub = subs.from_token(s, context.secret, "manage", token)
            action(s, sub, context.clock())
    except InvalidInput as e:
        return flash.back(request, f"/manage/{token}", e, form, fallback=lambda e: _view(
            request, token, status=400, error=e, form=form))
    except TokenError:
        return _view(request, token)
    return _done(token, done)


@manage_router.get("")
def manage(request: Request, token: str) -> Response:
    f = flash.take(request)
    if f is None:
        return _view(request, token)
    return _view(request, token, status=f.status, error=flash.form_error(f), form=f.form,
                 notice=f.notice)


@manage_router.post("/settings")
def save_settings(
    request: Request, token: str,
    frequency: Annotated[str, Form(max_length=20)],
    hour: Annotated[str, Form(max_length=5)],
    weekday: Annotated[str, Form(max_length=5)] = "0",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    topics: Annotated[list[int] | None, Form()] = None,
) -> Response:
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        prefs = subs.parse_prefs(frequency, hour, weekday, timezone)
        subs.update_subscriber(s, sub, now, "subscriber", prefs=prefs)
        subs.set_topics(s, sub, set(topics or []), "subscriber")

    return _change(request, token, action, "saved")


@manage_router.post("/rules")
def add_rule(
    request: Request, token: str,
    query: Annotated[str, Form(max_length=5000)],
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.add_rule(s, sub, query, name, "subscriber", now)

    return _change(request, token, action, "rule-added", {"query": query, "name": name})


def _own_rule(s: Session, sub: m.Subscriber, rule_id: int) -> m.Rule:
    rule = s.get(m.Rule, rule_id)
    if rule is None or rule.subscriber_id != sub.id:
        raise InvalidInput("rule", "no such rule")
    return rule


@manage_router.post("/rules/{rule_id:id}")
def edit_rule(
    request: Request, token: str, rule_id: int,
    query: Annotated[str, Form(max_length=5000)],
    name: Annotated[str, Form(max_length=200)] = "",
    enabled: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.edit_rule(s, _own_rule(s, sub, rule_id), query, name, bool(enabled),
                       "subscriber", now)

    form = {"rule_id": rule_id, "query": query, "name": name}
    return _change(request, token, action, "rule-saved", form)


@manage_router.post("/rules/{rule_id:id}/delete")
def delete_rule(request: Request, token: str, rule_id: int) -> Response:
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.delete_rule(s, _own_rule(s, sub, rule_id), "subscriber")

    return _change(request, token, action, "rule-deleted")


@manage_router.post("/pause")
def pause(request: Request, token: str) -> Response:
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.pause(s, sub, now, "subscriber")

    return _change(request, token, action, "paused")


@manage_router.post("/resume")
def resume(request: Request, token: str) -> Response:
    """Resume a paused subscription, or resubscribe after unsubscribing (the link proves the
    mailbox, so no new confirmation is needed)."""
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.resume(s, sub, now, "subscriber")

    return _change(request, token, action, "resumed")


@manage_router.post("/preview")
def preview(request: Request, token: str) -> Response:
    context = ctx(request)
    try:
        with context.factory() as s:
            sub = subs.from_token(s, context.secret, "manage", token)
            sid, email = sub.id, sub.email
    except TokenError:
        return _view(request, token)
    here = f"/manage/{token}"
    wait = context.limits.previews.hit(str(sid), context.clock().timestamp())
    if wait is not None:
        notice = f"You asked for several previews already; try again in {int(wait // 60) + 1} min."
        return flash.redirect(request, here, flash.Flash(notice=notice, status=429))
    try:
        n = send_preview(context, sid)
    except DeliveryError as e:
        return flash.redirect(request, here, flash.Flash(
            notice=f"The preview could not be sent: {e}", status=502))
    papers = f"{n} paper{'' if n == 1 else 's'}"
    return flash.redirect(request, here, flash.Flash(
        notice=f"A preview with {papers} was sent to {email}."))
