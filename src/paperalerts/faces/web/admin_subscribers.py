"""Admin: subscribers — search and filter, create, edit, status, delete with their data, links
for support, CSV export, CSV import with a dry-run report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, or_, select

from paperalerts.core.subscribers import STATUSES, subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import InvalidInput
from paperalerts.faces.web import csvio, flash
from paperalerts.faces.web.auth import Admin
from paperalerts.faces.web.context import ctx
from paperalerts.faces.web.manage import next_digest_text
from paperalerts.faces.web.templating import page
from paperalerts.pipeline import subscriptions as subs

router = APIRouter(prefix="/subscribers")
PAGE_SIZE = 50
NOTICES = {"created": "Subscriber created.", "saved": "Saved.", "rule-added": "Rule added.",
           "rule-saved": "Rule saved.", "rule-deleted": "Rule deleted.",
           "status": "Status changed.", "links-reset": "Old links revoked; new links below."}


@router.get("")
def list_subscribers(
    request: Request, admin: Admin, q: str = "", status: str = "", page_no: int = 1
) -> Response:
    context = ctx(request)
    query = select(m.Subscriber)
    if q.strip():
        like = f"%{q.strip().lower()}%"
        query = query.where(or_(m.Subscriber.email.like(like),
                                func.lower(m.Subscriber.name).like(like)))
    if status in STATUSES:
        query = query.where(m.Subscriber.status == status)
    page_no = min(max(page_no, 1), 1_000_000)  # an OFFSET the database can take
    with context.factory() as s:
        total = int(s.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = list(s.scalars(query.order_by(m.Subscriber.email)
                              .offset((page_no - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
        ids = [r.id for r in rows]
        rule_counts = dict(s.execute(select(m.Rule.subscriber_id, func.count())
                                     .where(m.Rule.subscriber_id.in_(ids))
                                     .group_by(m.Rule.subscriber_id)).all())
    return page(request, "admin/subscribers.html", {
        "rows": rows, "rule_counts": rule_counts, "q": q, "status": status,
        "statuses": STATUSES, "total": total, "page_no": page_no,
        "pages": max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)})


@router.get("/export.csv")
def export(request: Request, admin: Admin) -> Response:
    """Every subscriber (suppressed ones too), streamed: the file the import reads back."""
    return StreamingResponse(csvio.export_csv(ctx(request).factory),
                             media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="subscribers.csv"'})


@router.get("/import")
def import_form(request: Request, admin: Admin) -> Response:
    return page(request, "admin/import.html", {"summary": None, "dry_run": True})


@router.post("/import")
async def import_csv(
    request: Request, admin: Admin,
    file: Annotated[UploadFile | None, File()] = None,
    text: Annotated[str, Form(max_length=5_000_000)] = "",
    dry_run: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Check every row; unless it is a dry run, create new addresses and update known ones
    (the pipeline `paperalerts subscribers import` runs). Rows with problems are listed with
    their line and skipped; a file that is not UTF-8 or has unknown columns is refused."""
    upload = file if file is not None and file.filename else None
    if upload is not None and (upload.size or 0) > csvio.MAX_UPLOAD_BYTES:
        return page(request, "admin/import.html", {
            "summary": csvio.too_large(upload.size or 0), "dry_run": True}, status=400)
    context = ctx(request)
    summary = await run_in_threadpool(
        csvio.run_import, context.factory, upload.file if upload else None, text,
        context.clock(), admin.actor, dry_run=bool(dry_run))
    return page(request, "admin/import.html", {
        "summary": summary, "dry_run": bool(dry_run)},
        status=400 if summary.refused else 200)


def _form_values(sub: m.Subscriber | None) -> dict[str, Any]:
    if sub is None:
        return {"email": "", "name": "", "status": "active", "frequency": "daily", "hour": 8,
                "weekday": 0, "timezone": "UTC", "rules": "", "topics": []}
    return {"email": sub.email, "name": sub.name, "status": sub.status,
            "frequency": sub.frequency, "hour": sub.send_hour, "weekday": sub.weekday,
            "timezone": sub.timezone}


@router.get("/new")
def new_form(request: Request, admin: Admin) -> Response:
    with ctx(request).factory() as s:
        topics = list(s.scalars(select(m.Topic).order_by(m.Topic.name)))
    f = flash.take(request)
    return page(request, "admin/subscriber_new.html", {
        "form": {**_form_values(None), **(f.form if f else {})}, "topics": topics,
        "error": flash.form_error(f)}, status=f.status if f else 200)


@router.post("")
def create(
    request: Request, admin: Admin,
    email: Annotated[str, Form(max_length=400)],
    name: Annotated[str, Form(max_length=200)] = "",
    status: Annotated[str, Form(max_length=20)] = "active",
    frequency: Annotated[str, Form(max_length=20)] = "daily",
    hour: Annotated[str, Form(max_length=5)] = "8",
    weekday: Annotated[str, Form(max_length=5)] = "0",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    rules: Annotated[str, Form(max_length=20000)] = "",
    topics: Annotated[list[int] | None, Form()] = None,
) -> Response:
    context = ctx(request)
    now = context.clock()
    form = {"email": email, "name": name, "status": status, "frequency": frequency,
            "hour": hour, "weekday": weekday, "timezone": timezone, "rules": rules,
            "topics": topics or []}
    try:
        with transaction(context.factory) as s:
            prefs = subs.parse_prefs(frequency, hour, weekday, timezone)
            queries = [q for q, _ in subs.parse_rule_lines(rules)]
            sub = subs.create_subscriber(s, email, prefs, now, admin.actor, status=status,
                                         name=name, rules=queries, topics=topics or [],
                                         public_only=False)
            sid = sub.id
    except InvalidInput as e:
        def fallback(e: InvalidInput) -> Response:
            with context.factory() as s:
                all_topics = list(s.scalars(select(m.Topic).order_by(m.Topic.name)))
            return page(request, "admin/subscriber_new.html",
                        {"form": form, "topics": all_topics, "error": e}, status=400)

        return flash.back(request, "/admin/subscribers/new", e, form, fallback=fallback)
    return RedirectResponse(f"/admin/subscribers/{sid}?done=created", status_code=303)


def detail(request: Request, sub_id: int, *, error: InvalidInput | None = None,
           form: dict[str, Any] | None = None, status: int = 200,
           notice: str | None = None) -> Response:
    context = ctx(request)
    with context.factory() as s:
        sub = s.get(m.Subscriber, sub_id)
        if sub is None:
            return page(request, "public/message.html", {
                "title": "Not found", "message": f"No subscriber {sub_id}.", "signup": False},
                status=404)
        rules = list(s.scalars(select(m.Rule).where(m.Rule.subscriber_id == sub_id)
                               .order_by(m.Rule.id)))
        topics = list(s.scalars(select(m.Topic).order_by(m.Topic.name)))
        followed = subs.topic_ids(s, sub_id)
        deliveries = list(s.scalars(select(m.Delivery).where(m.Delivery.subscriber_id == sub_id)
                                    .order_by(m.Delivery.id.desc()).limit(10)))
        matches = int(s.scalar(select(func.count()).select_from(m.Match)
                               .where(m.Match.subscriber_id == sub_id)) or 0)
        waiting = int(s.scalar(select(func.count()).select_from(m.Match).where(
            m.Match.subscriber_id == sub_id, m.Match.delivery_id.is_(None))) or 0)
    links = subscriber_links(context.base_url, context.secret, sub.id, sub.token_version,
                             now=context.clock())
    return page(request, "admin/subscriber.html", {
        "sub": sub, "rules": rules, "topics": topics, "followed": followed, "links": links,
        "deliveries": deliveries, "matches": matches, "waiting": waiting, "statuses": STATUSES,
        "error": error,
        "form": {**_form_values(sub), **(form or {})},
        "next_digest": next_digest_text(sub, context.clock()),
        "notice": notice or NOTICES.get(request.query_params.get("done", ""))}, status=status)


@router.get("/{sub_id:id}")
def show(request: Request, admin: Admin, sub_id: int) -> Response:
    f = flash.take(request)
    if f is None:
        return detail(request, sub_id)
    return detail(request, sub_id, error=flash.form_error(f), form=f.form, status=f.status,
                  notice=f.notice)


def _change(request: Request, sub_id: int, action: Any, done: str,
            form: dict[str, Any] | None = None) -> Response:
    context = ctx(request)
    try:
        with transaction(context.factory) as s:
            sub = s.get(m.Subscriber, sub_id)
            if sub is None:
                raise InvalidInput("subscriber", f"no subscriber {sub_id}")
            action(s, sub, context.clock())
    except InvalidInput as e:
        return flash.back(request, f"/admin/subscribers/{sub_id}", e, form, fallback=lambda e:
                          detail(request, sub_id, error=e, form=form, status=400))
    return RedirectResponse(f"/admin/subscribers/{sub_id}?done={done}", status_code=303)


@router.post("/{sub_id:id}")
def update(
    request: Request, admin: Admin, sub_id: int,
    email: Annotated[str, Form(max_length=400)],
    name: Annotated[str, Form(max_length=200)] = "",
    frequency: Annotated[str | None, Form(max_length=20)] = None,
    hour: Annotated[str, Form(max_length=5)] = "8",
    weekday: Annotated[str, Form(max_length=5)] = "0",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    topics: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """Profile and topics; the schedule too when the form sends ``frequency`` (the page's
    schedule has its own form, `admin_schedule.set_schedule`)."""
    form = {"email": email, "name": name}
    if frequency is not None:
        form |= {"frequency": frequency, "hour": hour, "weekday": weekday, "timezone": timezone}

    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        prefs = None if frequency is None else subs.parse_prefs(frequency, hour, weekday,
                                                                timezone)
        subs.update_subscriber(s, sub, now, admin.actor, email=email, name=name, prefs=prefs)
        subs.set_topics(s, sub, set(topics or []), admin.actor, public_only=False)

    return _change(request, sub_id, action, "saved", form)


@router.post("/{sub_id:id}/status")
def set_status(
    request: Request, admin: Admin, sub_id: int, status: Annotated[str, Form(max_length=20)]
) -> Response:
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.set_status(s, sub, status, now, admin.actor)

    return _change(request, sub_id, action, "status")


@router.post("/{sub_id:id}/links/reset")
def reset_links(request: Request, admin: Admin, sub_id: int) -> Response:
    """Revoke every link sent so far (manage, unsubscribe, feed) by bumping the token version."""
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.reset_links(s, sub, now, admin.actor)

    return _change(request, sub_id, action, "links-reset")


@router.post("/{sub_id:id}/rules")
def add_rule(
    request: Request, admin: Admin, sub_id: int,
    query: Annotated[str, Form(max_length=5000)],
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def action(s: Any, sub: m.Subscriber, now: Any) -> None:
        subs.add_rule(s, sub, query, name, admin.actor, now)

    return _change(request, sub_id, action, "rule-added", {"query": query, "rule_name": name})


@router.post("/{sub_id:id}/delete")
def delete(request: Request, admin: Admin, sub_id: int) -> Response:
    with transaction(ctx(request).factory) as s:
        sub = s.get(m.Subscriber, sub_id)
        if sub is not None:
            subs.delete_subscriber(s, sub, admin.actor)
    return RedirectResponse("/admin/subscribers?done=deleted", status_code=303)
