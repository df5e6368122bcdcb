"""The admin: login/logout and the dashboard here; the areas in ``admin_*`` modules.

Every route but the login form sits behind `require_admin` and `csrf_required`, attached to
the router that includes them, so no admin page can be added without both.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from paperalerts.core.health import HealthReport, group_incidents
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.step_config import health_config
from paperalerts.faces.web import (
    admin_feedback,
    admin_ops,
    admin_rules,
    admin_schedule,
    admin_sources,
    admin_subscribers,
    flash,
)
from paperalerts.faces.web.auth import (
    SESSION_COOKIE,
    Admin,
    attempt_login,
    end_session,
    require_admin,
    secure_cookies,
    start_session,
)
from paperalerts.faces.web.context import WebContext, ctx
from paperalerts.faces.web.csrf import csrf_required
from paperalerts.faces.web.templating import page
from paperalerts.pipeline.health import HealthConfig, collect_report

router = APIRouter()
protected = APIRouter(prefix="/admin",
                      dependencies=[Depends(require_admin), Depends(csrf_required)])


def _safe_next(target: str) -> str:
    """Only a local admin path: never an open redirect to another site."""
    if target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin"


@router.get("/admin/login")
def login_form(request: Request, next: str = "/admin") -> Response:
    f = flash.take(request)
    return page(request, "admin/login.html", {
        "next": _safe_next(next), "error": f.notice if f else None,
        "username": f.form.get("username", "") if f else ""}, status=f.status if f else 200)


@router.post("/admin/login", dependencies=[Depends(csrf_required)])
def login(
    request: Request,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=500)] = "/admin",
) -> Response:
    context = ctx(request)
    ip = request.client.host if request.client else "unknown"
    result = attempt_login(context, username, password, ip)
    if result.admin is None:
        if result.retry_after:
            error = f"Too many failed attempts. Try again in {int(result.retry_after) + 1} s."
            status, headers = 429, {"Retry-After": str(int(result.retry_after) + 1)}
            # A rate-limit answer stays an answer (with Retry-After); it checked no password.
            return page(request, "admin/login.html", {
                "next": _safe_next(next), "error": error, "username": username.strip()},
                status=status, headers=headers)
        # Back to the form (post/redirect/get), keeping the name typed and where to go next.
        return flash.redirect(request, f"/admin/login?{urlencode({'next': _safe_next(next)})}",
                              flash.Flash(notice="Wrong username or password.", status=401,
                                          form={"username": username.strip()}))
    with transaction(context.factory) as s:
        cookie = start_session(s, result.admin.id, context.clock(),
                               context.settings.admin_session_hours)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, cookie,
        max_age=context.settings.admin_session_hours * 3600, httponly=True, samesite="lax",
        secure=secure_cookies(context, request), path="/",
    )
    return response


@protected.post("/logout")
def logout(request: Request, admin: Admin) -> Response:
    """End the session on the server (the cookie is worthless from now on, wherever a copy
    of it is) and drop the cookie."""
    with transaction(ctx(request).factory) as s:
        end_session(s, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def health_report(request: Request) -> HealthReport:
    """The operator's health as of now: open incidents, last tick, stuck deliveries and the
    last 24 hours along the pipeline (the same figures as `paperalerts status`)."""
    return context_report(ctx(request))


def context_report(context: WebContext) -> HealthReport:
    """`health_report` for a caller that holds the context (the API's status)."""
    try:
        cfg = health_config(context.settings)
    except ValueError:  # a malformed ADMIN_EMAILS only matters for mailing; `status` says it
        cfg = HealthConfig(admin_emails=(), mail_from=context.settings.mail_from, mail_domain="",
                           base_url=context.base_url,
                           tick_stale_after=timedelta(seconds=context.settings.tick_stale_seconds),
                           stuck_after=timedelta(seconds=context.settings.delivery_stale_seconds))
    return collect_report(context.factory, cfg, context.clock())


@protected.get("")
def dashboard(request: Request, admin: Admin) -> Response:
    context = ctx(request)
    with context.factory() as s:
        statuses = dict(s.execute(select(m.Subscriber.status, func.count())
                                  .group_by(m.Subscriber.status)).all())
        source_ids: dict[str, int] = {
            n: i for n, i in s.execute(select(m.Source.name, m.Source.id))}
    report = health_report(request)
    # Sources by the same verdict as status and /healthz (one that never worked is failing);
    # sources failing for one cause (a dead network) are one card listing each.
    return page(request, "admin/dashboard.html", {
        "counts": report.counts.pairs(), "statuses": statuses,
        "health": report.verdict_counts(), "report": report,
        "incident_groups": group_incidents(report.incidents), "source_ids": source_ids})


protected.include_router(admin_subscribers.router)
protected.include_router(admin_schedule.router)
protected.include_router(admin_rules.router)
protected.include_router(admin_sources.router)
protected.include_router(admin_ops.router)
protected.include_router(admin_feedback.router)
router.include_router(protected)
