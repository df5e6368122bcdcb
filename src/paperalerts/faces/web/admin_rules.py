"""Admin: rules and topics — edit with live validation and a preview of the last N days'
papers (highlighted) before saving; apply one rule to many subscribers; topics with their
subscriber counts and matches per week."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import InvalidInput
from paperalerts.faces.web import flash
from paperalerts.faces.web.auth import Admin
from paperalerts.faces.web.context import ctx
from paperalerts.faces.web.digests import rule_preview
from paperalerts.faces.web.templating import not_found, page
from paperalerts.pipeline import subscriptions as subs

router = APIRouter()
PREVIEW_DAYS = (1, 3, 7, 14, 30)
TOPIC_NOTICES = {"saved": "Topic saved.", "deleted": "Topic deleted."}


class PreviewRequest(BaseModel):
    query: str = Field(max_length=5000)
    days: int = Field(default=7, ge=1, le=90)


@router.post("/preview")
def preview(request: Request, admin: Admin, body: PreviewRequest) -> Response:
    """An HTML fragment: the rule's error at its position, or the papers it would have matched
    (highlighted). Posted by the rule and topic editors' script with the CSRF header."""
    context = ctx(request)
    try:
        normalized = subs.check_rule(body.query)
    except InvalidInput as e:
        return page(request, "admin/_preview.html",
                    {"error": e, "query": body.query, "result": None}, status=200)
    with context.factory() as s:
        result = rule_preview(s, body.query, normalized, context.clock(), body.days)
    return page(request, "admin/_preview.html", {"error": None, "query": body.query,
                                                  "result": result})


def _rule_page(request: Request, rule_id: int, *, error: InvalidInput | None = None,
               form: dict[str, Any] | None = None, status: int = 200) -> Response:
    with ctx(request).factory() as s:
        rule = s.get(m.Rule, rule_id)
        if rule is None:
            return page(request, "public/message.html", {
                "title": "Not found", "message": f"No rule {rule_id}.", "signup": False},
                status=404)
        sub = s.get_one(m.Subscriber, rule.subscriber_id)
    values = {"query": rule.query, "name": rule.name, "enabled": rule.enabled, **(form or {})}
    return page(request, "admin/rule.html", {"rule": rule, "sub": sub, "form": values,
                                             "error": error, "days": PREVIEW_DAYS},
                status=status)


@router.get("/rules/{rule_id:id}")
def edit_form(request: Request, admin: Admin, rule_id: int) -> Response:
    f = flash.take(request)
    if f is None:
        return _rule_page(request, rule_id)
    return _rule_page(request, rule_id, error=flash.form_error(f), form=f.form, status=f.status)


@router.post("/rules/{rule_id:id}")
def save(
    request: Request, admin: Admin, rule_id: int,
    query: Annotated[str, Form(max_length=5000)],
    name: Annotated[str, Form(max_length=200)] = "",
    enabled: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    context = ctx(request)
    try:
        with transaction(context.factory) as s:
            rule = s.get(m.Rule, rule_id)
            if rule is None:
                raise InvalidInput("rule", f"no rule {rule_id}")
            subs.edit_rule(s, rule, query, name, bool(enabled), admin.actor, context.clock())
            sid = rule.subscriber_id
    except InvalidInput as e:
        form = {"query": query, "name": name, "enabled": bool(enabled)}
        here = f"/admin/rules/{rule_id}"
        return flash.back(request, here, e, form, fallback=lambda e: _rule_page(
            request, rule_id, error=e, form=form, status=400))
    return RedirectResponse(f"/admin/subscribers/{sid}?done=rule-saved", status_code=303)


@router.post("/rules/{rule_id:id}/delete")
def delete(request: Request, admin: Admin, rule_id: int) -> Response:
    with transaction(ctx(request).factory) as s:
        rule = s.get(m.Rule, rule_id)
        if rule is None:
            return RedirectResponse("/admin/subscribers", status_code=303)
        sid = rule.subscriber_id
        subs.delete_rule(s, rule, admin.actor)
    return RedirectResponse(f"/admin/subscribers/{sid}?done=rule-deleted", status_code=303)


@router.get("/rules/bulk")
def bulk_form(request: Request, admin: Admin) -> Response:
    f = flash.take(request)
    form = {"query": "", "name": "", "emails": "", "status": "", **(f.form if f else {})}
    return page(request, "admin/bulk.html", {
        "form": form, "error": flash.form_error(f), "result": f.extra.get("result") if f else None},
        status=f.status if f else 200)


@router.post("/rules/bulk")
def bulk(
    request: Request, admin: Admin,
    query: Annotated[str, Form(max_length=5000)],
    name: Annotated[str, Form(max_length=200)] = "",
    emails: Annotated[str, Form(max_length=2_000_000)] = "",
    status: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Add one rule to every listed address (one per line) or every subscriber with a status;
    subscribers who already have the same rule (normalised) are skipped."""
    context = ctx(request)
    now = context.clock()
    form = {"query": query, "name": name, "emails": emails, "status": status}
    added: list[str] = []
    skipped: list[str] = []
    try:
        normalized = subs.check_rule(query)
        with transaction(context.factory) as s:
            targets = _bulk_targets(s, emails, status)
            for sub in targets:
                have = set(s.scalars(select(m.Rule.normalized)
                                     .where(m.Rule.subscriber_id == sub.id)))
                if normalized in have:
                    skipped.append(sub.email)
                else:
                    subs.add_rule(s, sub, query, name, admin.actor, now)
                    added.append(sub.email)
    except InvalidInput as e:
        return flash.back(request, "/admin/rules/bulk", e, form, fallback=lambda e: page(
            request, "admin/bulk.html", {"form": form, "error": e, "result": None}, status=400))
    result = {"added": added, "skipped": skipped}
    return flash.redirect(request, "/admin/rules/bulk", flash.Flash(
        form={"query": query, "name": name}, extra={"result": result}), fallback=lambda: page(
        request, "admin/bulk.html", {"form": form, "error": None, "result": result}))


def _bulk_targets(s: Any, emails: str, status: str) -> list[m.Subscriber]:
    if emails.strip():
        out = []
        for n, line in enumerate(emails.splitlines(), 1):
            if not line.strip():
                continue
            addr = subs.parse_email(line)
            sub = subs.by_email(s, addr)
            if sub is None:
                raise InvalidInput("emails", f"line {n}: no subscriber {addr}")
            out.append(sub)
        return out
    if status:
        return list(s.scalars(select(m.Subscriber).where(m.Subscriber.status == status)))
    raise InvalidInput("emails", "list addresses (one per line) or choose a status")


# --- topics --------------------------------------------------------------------------------


@router.get("/topics")
def topics(request: Request, admin: Admin) -> Response:
    context = ctx(request)
    week = context.clock() - timedelta(days=7)
    with context.factory() as s:
        rows = list(s.scalars(select(m.Topic).order_by(m.Topic.name)))
        followers = dict(s.execute(select(m.SubscriberTopic.topic_id, func.count())
                                   .group_by(m.SubscriberTopic.topic_id)).all())
        weekly = dict(s.execute(select(m.Match.topic_id, func.count())
                                .where(m.Match.topic_id.is_not(None), m.Match.matched_at >= week)
                                .group_by(m.Match.topic_id)).all())
    return page(request, "admin/topics.html", {
        "rows": rows, "followers": followers, "weekly": weekly,
        "notice": TOPIC_NOTICES.get(request.query_params.get("done", ""))})


def _topic_page(request: Request, topic_id: int | None, form: dict[str, Any],
                error: InvalidInput | None = None, status: int = 200) -> Response:
    return page(request, "admin/topic.html", {"topic_id": topic_id, "form": form,
                                              "error": error, "days": PREVIEW_DAYS},
                status=status)


@router.get("/topics/new")
def topic_new(request: Request, admin: Admin) -> Response:
    form = {"name": "", "description": "", "query": "", "public": True, "enabled": True}
    f = flash.take(request)
    return _topic_page(request, None, {**form, **(f.form if f else {})}, flash.form_error(f),
                       status=f.status if f else 200)


@router.get("/topics/{topic_id:id}")
def topic_edit(request: Request, admin: Admin, topic_id: int) -> Response:
    with ctx(request).factory() as s:
        topic = s.get(m.Topic, topic_id)
    if topic is None:
        return not_found(request, f"No topic {topic_id}.")
    f = flash.take(request)
    return _topic_page(request, topic_id, {**subs.topic_state(topic), **(f.form if f else {})},
                       flash.form_error(f), status=f.status if f else 200)


@router.post("/topics")
@router.post("/topics/{topic_id:id}")
def topic_save(
    request: Request, admin: Admin,
    name: Annotated[str, Form(max_length=200)],
    query: Annotated[str, Form(max_length=5000)],
    description: Annotated[str, Form(max_length=5000)] = "",
    public: Annotated[str, Form(max_length=5)] = "",
    enabled: Annotated[str, Form(max_length=5)] = "",
    topic_id: int | None = None,
) -> Response:
    """Create or edit a topic; a changed rule applies to everyone following it at once."""
    context = ctx(request)
    now = context.clock()
    form = {"name": name, "description": description, "query": query,
            "public": bool(public), "enabled": bool(enabled)}
    try:
        with transaction(context.factory) as s:
            topic = s.get(m.Topic, topic_id) if topic_id is not None else None
            if topic_id is not None and topic is None:  # deleted meanwhile: never recreate it
                return not_found(request, f"No topic {topic_id}.")
            subs.save_topic(s, topic, now, admin.actor, name=name, query=query,
                            description=description, public=bool(public), enabled=bool(enabled))
    except InvalidInput as e:
        target = f"/admin/topics/{topic_id}" if topic_id is not None else "/admin/topics/new"
        return flash.back(request, target, e, form, fallback=lambda e: _topic_page(
            request, topic_id, form, e, status=400))
    return RedirectResponse("/admin/topics?done=saved", status_code=303)


@router.post("/topics/{topic_id:id}/delete")
def topic_delete(request: Request, admin: Admin, topic_id: int) -> Response:
    with transaction(ctx(request).factory) as s:
        topic = s.get(m.Topic, topic_id)
        if topic is not None:
            subs.delete_topic(s, topic, admin.actor)
    return RedirectResponse("/admin/topics?done=deleted", status_code=303)
