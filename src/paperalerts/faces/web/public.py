"""Public pages: sign-up (double opt-in), confirm, the manage page, unsubscribe, the online
view of a digest and the Atom feed (the rule validator their script calls is rule_check.py).

Signed links are the only authority here (no login): ``/confirm/T`` (expires), ``/manage/T``,
``/u/T`` and ``/feed/T`` (revoked by bumping the subscriber's token version).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from paperalerts.core.subscribers import WEEKDAYS
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import InvalidInput, TokenError
from paperalerts.faces.web import flash
from paperalerts.faces.web.context import WebContext, ctx
from paperalerts.faces.web.csrf import csrf_required
from paperalerts.faces.web.digests import render_online, send_already_subscribed, send_confirm
from paperalerts.faces.web.feed import atom_feed
from paperalerts.faces.web.feedback import manage_feedback
from paperalerts.faces.web.feedback import router as feedback_router
from paperalerts.faces.web.manage import manage_router
from paperalerts.faces.web.signed_links import link_error, manage_url
from paperalerts.faces.web.templating import page
from paperalerts.pipeline import signups
from paperalerts.pipeline import subscriptions as subs

router = APIRouter()
router.include_router(manage_router)
router.include_router(manage_feedback)
router.include_router(feedback_router)
Csrf = Depends(csrf_required)
ONLINE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _public_topics(context: WebContext) -> list[m.Topic]:
    with context.factory() as s:
        return list(s.scalars(select(m.Topic).where(m.Topic.public.is_(True),
                                                    m.Topic.enabled.is_(True))
                              .order_by(m.Topic.name)))


@router.get("/")
@router.get("/signup")
def signup_form(request: Request) -> Response:
    form = {"email": "", "frequency": "daily", "hour": 8, "weekday": 0, "timezone": "",
            "rules": "", "topics": []}
    f = flash.take(request) if request.url.path == "/signup" else None
    return page(request, "public/signup.html", {
        "topics": _public_topics(ctx(request)), "form": {**form, **(f.form if f else {})},
        "error": flash.form_error(f)}, status=f.status if f else 200)


@router.get("/signup/done")
def signup_done(request: Request) -> Response:
    """Where every accepted sign-up lands (post/redirect/get): the same page for any address."""
    return page(request, "public/signup_done.html", csrf=False)


@router.post("/signup", dependencies=[Csrf])
def signup(
    request: Request,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=400)] = "",
    frequency: Annotated[str, Form(max_length=20)] = "daily",
    hour: Annotated[str, Form(max_length=5)] = "8",
    weekday: Annotated[str, Form(max_length=5)] = "0",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    rules: Annotated[str, Form(max_length=20000)] = "",
    topics: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """Same answer for a new, pending, active or unsubscribed address: the page, its status and
    its bytes never depend on whether the address is known, and the email goes out after the
    response (see `send_confirm`)."""
    context = ctx(request)
    now = context.clock()
    wait = context.limits.signup_ip.hit(client_ip(request), now.timestamp())
    if wait is not None:
        return page(request, "public/message.html", {
            "title": "Too many sign-ups", "signup": False,
            "message": "Too many sign-ups from your network. Please try again later."},
            status=429, headers={"Retry-After": str(int(wait) + 1)})
    chosen = set(topics or [])
    form = {"email": email, "frequency": frequency, "hour": hour, "weekday": weekday,
            "timezone": timezone, "rules": rules, "topics": sorted(chosen)}
    try:
        addr = subs.parse_email(email)
        prefs = subs.parse_prefs(frequency, hour, weekday, timezone)
        parsed = subs.parse_rule_lines(rules)
        public = {t.id for t in _public_topics(context)}
        if not parsed and not chosen & public:
            raise InvalidInput("rules", "choose at least one topic or write a rule")
    except InvalidInput as e:
        return flash.back(request, "/signup", e, form, fallback=lambda e: page(
            request, "public/signup.html",
            {"topics": _public_topics(context), "form": form, "error": e}, status=400))
    if context.limits.signup_address.hit(addr, now.timestamp()) is None:
        # The same statements for every address (`signups.record_signup`); which email goes
        # out, and what it needs to look up, is decided after the answer has been sent.
        with transaction(context.factory) as s:
            rec = signups.record_signup(
                s, addr, prefs, [query for query, _ in parsed], chosen, now,
                keep=timedelta(hours=context.settings.confirm_max_age_hours))
        if rec.needs_confirm:
            background.add_task(send_confirm, context, rec.subscriber_id, rec.request_id)
        else:  # active or paused: only their own links change them
            background.add_task(send_already_subscribed, context, rec.subscriber_id,
                                sorted(chosen))
    # The same redirect, to the same page, whatever the address: nothing to enumerate.
    return flash.redirect(request, "/signup/done")


@router.get("/confirm/{token}")
def confirm_form(request: Request, token: str) -> Response:
    """A page with one button (mail scanners that prefetch links confirm nobody), saying what
    confirming will do: the schedule, rules and topics entered at sign-up, and that they
    replace an earlier subscription's."""
    context = ctx(request)
    try:
        with context.factory() as s:
            link = signups.from_confirm_token(s, context.secret, token,
                                              context.settings.confirm_max_age_hours * 3600)
            email = link.sub.email
            plan = signups.describe(s, link.sub, link.request) if link.request else None
    except TokenError as e:
        return link_error(request, e)
    return page(request, "public/confirm.html", {"email": email, "token": token, "plan": plan,
                                                 "weekdays": WEEKDAYS})


@router.post("/confirm/{token}", dependencies=[Csrf])
def confirm(request: Request, token: str) -> Response:
    context = ctx(request)
    now = context.clock()
    try:
        with transaction(context.factory) as s:
            link = signups.from_confirm_token(s, context.secret, token,
                                              context.settings.confirm_max_age_hours * 3600)
            done = signups.confirm_signup(s, link, now)
            target = manage_url(context, link.sub)
    except TokenError as e:
        return link_error(request, e)
    except subs.NotAllowed:
        return link_error(request, TokenError("a closed subscription", reason="revoked"))
    return RedirectResponse(f"{target}?done={done}", status_code=303)


@router.get("/u/{token}")
def unsubscribe_form(request: Request, token: str) -> Response:
    context = ctx(request)
    try:
        with context.factory() as s:
            sub = subs.from_token(s, context.secret, "unsubscribe", token)
            email, status = sub.email, sub.status
    except TokenError as e:
        return link_error(request, e)
    return page(request, "public/unsubscribe.html",
                {"email": email, "token": token, "already": status == "unsubscribed"}, csrf=False)


@router.post("/u/{token}")
def unsubscribe(request: Request, token: str) -> Response:
    """RFC 8058 one-click: works with no cookie, no login and no CSRF token (the signed token is
    the authority), answers 200 without redirecting, and is idempotent. The body
    (``List-Unsubscribe=One-Click``) is not required: any POST to the link unsubscribes."""
    context = ctx(request)
    now = context.clock()
    try:
        with transaction(context.factory) as s:
            sub = subs.from_token(s, context.secret, "unsubscribe", token)
            subs.unsubscribe(s, sub, now, "subscriber")
            email, manage = sub.email, manage_url(context, sub)
    except TokenError as e:
        return link_error(request, e)
    return page(request, "public/unsubscribed.html", {"email": email, "manage": manage},
                csrf=False)


@router.get("/d/{view_key}")
def view_online(request: Request, view_key: str) -> Response:
    """A sent digest as a page, at the delivery's unguessable view key. The page carries the
    subscriber's manage and unsubscribe links, so a key obeys link resets like those links do:
    a digest sent before the last reset answers 410 "this link was reset", never fresh links."""
    context = ctx(request)
    with context.factory() as s:
        d = s.scalars(select(m.Delivery).where(m.Delivery.view_key == view_key)).first()
        if d is None or d.kind not in ("digest", "alert") or d.status != "sent":
            return page(request, "public/message.html", {
                "title": "Not found", "message": "There is no digest at this address.",
                "signup": False}, status=404, csrf=False)
        if subs.view_revoked(s.get_one(m.Subscriber, d.subscriber_id), d):
            return page(request, "public/message.html", {
                "title": "This link was reset",
                "message": "The links of this subscription were reset after this digest was "
                "sent, so it can no longer be viewed here. Newer emails carry working links.",
                "signup": False}, status=410, csrf=False)
        html = render_online(context, s, d).html
    return Response(html, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": ONLINE_CSP, "X-Robots-Tag": "noindex"})


@router.get("/feed/{token}")
def feed(request: Request, token: str) -> Response:
    context = ctx(request)
    try:
        with context.factory() as s:
            sub = subs.from_token(s, context.secret, "feed", token)
            body = atom_feed(s, sub, f"{context.base_url}/feed/{token}", context.base_url,
                             context.clock())
    except TokenError:
        return Response("feed not found\n", status_code=404, media_type="text/plain")
    return Response(body, media_type="application/atom+xml; charset=utf-8",
                    headers={"X-Robots-Tag": "noindex"})
