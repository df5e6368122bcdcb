"""Admin: the delivery log (filter, message preview, resend a failed one), the audit log with
before and after, and API tokens."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import InvalidInput
from paperalerts.faces.web import flash
from paperalerts.faces.web.auth import Admin
from paperalerts.faces.web.context import ctx
from paperalerts.faces.web.digests import render_online
from paperalerts.faces.web.public import ONLINE_CSP
from paperalerts.faces.web.templating import not_found, page
from paperalerts.pipeline import api_tokens
from paperalerts.pipeline.resend import failed_deliveries, resend_deliveries

router = APIRouter()
PAGE = 100


@router.get("/deliveries")
def deliveries(
    request: Request, admin: Admin, status: str = "", subscriber: str = "", day: str = "",
    kind: str = "",
) -> Response:
    context = ctx(request)
    q = select(m.Delivery, m.Subscriber.email).join(
        m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
    if status in m.DELIVERY_STATUSES:
        q = q.where(m.Delivery.status == status)
    if kind:
        q = q.where(m.Delivery.kind == kind)
    if subscriber.strip():
        q = q.where(m.Subscriber.email.like(f"%{subscriber.strip().lower()}%"))
    error = None
    if day:
        try:
            start = datetime.combine(date.fromisoformat(day), time(), tzinfo=context.clock().tzinfo)
            q = q.where(m.Delivery.created_at >= start,
                        m.Delivery.created_at < start + timedelta(days=1))
        except ValueError:
            error = f"{day!r} is not a date (YYYY-MM-DD)"
    with context.factory() as s:
        rows = list(s.execute(q.order_by(m.Delivery.id.desc()).limit(PAGE)).all())
        ids = [d.id for d, _ in rows]
        papers = dict(s.execute(select(m.Match.delivery_id, func.count())
                                .where(m.Match.delivery_id.in_(ids))
                                .group_by(m.Match.delivery_id)).all())
        resendable = len(failed_deliveries(context.factory))
    resent = request.query_params.get("resent", "")
    return page(request, "admin/deliveries.html", {
        "rows": rows, "papers": papers, "statuses": m.DELIVERY_STATUSES, "error": error,
        "resendable": resendable,
        "notice": f"{int(resent)} failed deliveries queued again." if resent.isdigit() else None,
        "filters": {"status": status, "subscriber": subscriber, "day": day, "kind": kind}})


@router.get("/deliveries/{delivery_id:id}")
def delivery(request: Request, admin: Admin, delivery_id: int) -> Response:
    with ctx(request).factory() as s:
        d = s.get(m.Delivery, delivery_id)
        if d is None:
            return not_found(request, f"No delivery {delivery_id}.")
        sub = s.get_one(m.Subscriber, d.subscriber_id)
        matches = list(s.execute(
            select(m.Match, m.Paper.title).join(m.Paper, m.Paper.id == m.Match.paper_id)
            .where(m.Match.delivery_id == d.id).order_by(m.Match.id)).all())
        resends = list(s.scalars(select(m.Delivery).where(m.Delivery.resend_of == d.id)))
    return page(request, "admin/delivery.html", {
        "d": d, "sub": sub, "matches": matches, "resends": resends,
        "notice": "Resend queued." if request.query_params.get("done") == "resent" else None})


@router.get("/deliveries/{delivery_id:id}/message")
def delivery_message(request: Request, admin: Admin, delivery_id: int) -> Response:
    """The digest as the subscriber saw it (rebuilt from its matches), for the preview frame."""
    context = ctx(request)
    with context.factory() as s:
        d = s.get(m.Delivery, delivery_id)
        if d is None:
            return not_found(request, f"No delivery {delivery_id}.")
        if d.kind not in ("digest", "alert"):
            return Response("no message preview for this delivery", media_type="text/plain")
        html = render_online(context, s, d).html
    return Response(html, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": ONLINE_CSP})


@router.post("/deliveries/{delivery_id:id}/resend")
def resend(request: Request, admin: Admin, delivery_id: int) -> Response:
    """A failed digest or alert gets a new queued delivery carrying the same papers (its
    matches move to it); the sweep sends it. The old row stays, for the record."""
    context = ctx(request)
    (r,) = resend_deliveries(context.factory, [delivery_id], now=context.clock(),
                             actor=admin.actor)  # fmt: skip
    if r.reason == "no such delivery":
        return not_found(request, f"No delivery {delivery_id}.")
    if r.new is None:
        return page(request, "public/message.html", {
            "title": "Cannot resend", "signup": False,
            "message": f"Only a failed digest or alert that holds papers can be resent, once: "
                       f"this one {r.reason}."}, status=409)
    return RedirectResponse(f"/admin/deliveries/{r.new}?done=resent", status_code=303)


@router.post("/deliveries/resend")
def resend_failed(request: Request, admin: Admin, since: Annotated[str, Form()] = "",
                  kind: Annotated[str, Form()] = "") -> Response:
    """Bulk resend: every failed digest or alert that still holds papers (created on or after
    `since`, of `kind`, when given) gets a new delivery with them; the sweep sends them."""
    context = ctx(request)
    start = None
    if since:
        try:
            start = datetime.combine(date.fromisoformat(since), time(),
                                     tzinfo=context.clock().tzinfo)  # fmt: skip
        except ValueError:
            return page(request, "public/message.html", {
                "title": "Cannot resend", "signup": False,
                "message": f"since: {since!r} is not a date (YYYY-MM-DD)"}, status=422)
    if kind not in ("", "digest", "alert"):
        return page(request, "public/message.html", {
            "title": "Cannot resend", "signup": False,
            "message": f"kind: {kind!r} is not digest or alert"}, status=422)
    ids = failed_deliveries(context.factory, since=start, kind=kind or None)
    out = resend_deliveries(context.factory, ids, now=context.clock(), actor=admin.actor)
    done = sum(1 for r in out if r.new is not None)
    return RedirectResponse(f"/admin/deliveries?status=queued&resent={done}", status_code=303)


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None
            ) -> list[tuple[str, Any, Any, bool]]:
    """The fields that differ, key by key: (key, before, after, True). A create or a delete
    (one side None) lists every field; an update lists only what it changed."""
    b, a = before or {}, after or {}
    keys = list(dict.fromkeys([*b, *a]))
    return [(k, b.get(k), a.get(k), True) for k in keys if b.get(k) != a.get(k)]


@router.get("/audit")
def audit_log(request: Request, admin: Admin, entity: str = "", entity_id: str = "",
              actor: str = "") -> Response:
    with ctx(request).factory() as s:
        rows = repo.audit_rows(s, entity=entity, entity_id=entity_id, actor=actor)
    return page(request, "admin/audit.html", {
        "rows": [(r, changes(r.before, r.after)) for r in rows],
        "filters": {"entity": entity, "entity_id": entity_id, "actor": actor}})


MAILBOX_KINDS = ("unsubscribed", "hard", "soft", "complaint", "policy", "unauthenticated",
                 "unknown", "ignored")


@router.get("/mailbox")
def mailbox_log(request: Request, admin: Admin, kind: str = "", email: str = "") -> Response:
    """What the mailbox reader did with each message: applied, or recorded and ignored (a
    report nothing proves is about our mail, a rejection of the sender's set-up)."""
    q = select(m.InboundMail)
    if kind in MAILBOX_KINDS:
        q = q.where(m.InboundMail.kind == kind)
    if email:
        q = q.where(m.InboundMail.email.like(f"%{email.strip().lower()}%"))
    with ctx(request).factory() as s:
        rows = list(s.scalars(q.order_by(m.InboundMail.processed_at.desc()).limit(200)))
    return page(request, "admin/mailbox.html", {
        "rows": rows, "kinds": MAILBOX_KINDS, "filters": {"kind": kind, "email": email}})


@router.get("/tokens")
def tokens(request: Request, admin: Admin) -> Response:
    f = flash.take(request)
    return _tokens_page(request, f.extra.get("token") if f else None)


def _tokens_page(request: Request, new_token: str | None) -> Response:
    with ctx(request).factory() as s:
        rows = list(s.scalars(select(m.ApiToken).order_by(m.ApiToken.id.desc())))
    return page(request, "admin/tokens.html", {"rows": rows, "new_token": new_token})


@router.post("/tokens")
def create_token(request: Request, admin: Admin,
                 name: Annotated[str, Form(min_length=1, max_length=100)]) -> Response:
    """Make a token; it is shown once (on the page this redirects to, through the short-lived
    HttpOnly flash cookie), only its SHA-256 is kept."""
    try:
        with transaction(ctx(request).factory) as s:
            _row, token = api_tokens.create_token(s, name, admin.actor, admin_id=admin.id)
    except InvalidInput as e:
        return page(request, "public/message.html", {
            "title": "No token made", "message": e.message, "signup": False}, status=400)
    return flash.redirect(request, "/admin/tokens", flash.Flash(extra={"token": token}),
                          fallback=lambda: _tokens_page(request, token))


@router.post("/tokens/{token_id:id}/revoke")
def revoke_token(request: Request, admin: Admin, token_id: int) -> Response:
    with transaction(ctx(request).factory) as s:
        row = s.get(m.ApiToken, token_id)
        if row is not None:
            api_tokens.revoke_token(s, row, admin.actor)
    return RedirectResponse("/admin/tokens", status_code=303)
