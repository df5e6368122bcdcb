"""Security of the web app: every admin page and API route refuses without authentication
(routes enumerated from the app itself), forms refuse without the CSRF token, sessions and
logins behave, scraped text is escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.web.auth import new_api_token, upsert_admin
from web_support import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    WebEnv,
    add_subscriber,
    make_admin,
    real_papers,
    seed_papers,
)

PUBLIC_ADMIN = {("GET", "/admin/login"), ("POST", "/admin/login")}


def _concrete(path: str) -> str:
    """A request path for a route template: ids become 1, a source action becomes 'enable'."""
    path = re.sub(r"\{action(:[a-z]+)?\}", "enable", path)
    return re.sub(r"\{[a-z_]+(:[a-z]+)?\}", "1", path)


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    """(METHOD, path template) of every route of `app`, as its OpenAPI generator walks them
    (the site publishes no schema, but the generator sees every route, included routers too)."""
    paths = app.openapi()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [(method, _concrete(path)) for method, path in _operations(app)
            if path.startswith("/admin") and (method, path) not in PUBLIC_ADMIN]


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/api/v1")
    api = mount.app
    assert isinstance(api, FastAPI)
    return [(method, "/api/v1" + _concrete(path)) for method, path in _operations(api)]



def test_every_admin_route_refuses_without_a_session(db: sessionmaker[Session]) -> None:
    """Each admin route the app serves (found by walking its routes) redirects a GET to the
    login form and answers 401 to anything else, without touching data; SQLite and PostgreSQL."""
    sid = add_subscriber(db, "secret-person@example.org", rules=("graph",))
    env = WebEnv.start(db)
    routes = admin_routes(env.app)
    assert len(routes) >= 40  # the enumeration really found the admin
    for method, path in routes:
        r = env.client.request(method, path, follow_redirects=False)
        if method == "GET":
            assert r.status_code == 303, (method, path)
            assert r.headers["location"].startswith("/admin/login"), (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)
        assert "secret-person" not in r.text
    with db() as s:
        assert s.get_one(m.Subscriber, sid).status == "active"
        assert s.query(m.AuditLog).count() == 0


def test_every_api_route_refuses_without_a_valid_token(db: sessionmaker[Session]) -> None:
    """Each API route answers 401 with no token, a wrong one and a revoked one."""
    token, digest = new_api_token()
    with transaction(db) as s:
        s.add(m.ApiToken(name="old", token_hash=digest, revoked=True))
    env = WebEnv.start(db)
    routes = api_routes(env.app)
    assert len(routes) >= 15
    for headers in ({}, {"Authorization": "Bearer pa_nope"}, {"Authorization": f"Bearer {token}"},
                    {"Authorization": f"Basic {token}"}):
        for method, path in routes:
            r = env.client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.status_code)


def test_admin_forms_refuse_without_the_csrf_token(factory: Any) -> None:
    """Logged in, every state-changing admin route refuses a request that lacks the token or
    carries another browser's; with the token it goes through."""
    make_admin(factory)
    sid = add_subscriber(factory, "c@example.org")
    env = WebEnv.start(factory)
    assert env.login().status_code == 303
    posts = [path for method, path in admin_routes(env.app) if method == "POST"]
    for path in posts:
        assert env.client.post(path, data={}).status_code == 403, path
        r = env.client.post(path, data={"csrf_token": "0" * 64})
        assert r.status_code == 403, path
    r = env.post_form("/admin/subscribers", f"/admin/subscribers/{sid}/status",
                      {"status": "paused"}, follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        assert s.get_one(m.Subscriber, sid).status == "paused"


def test_session_cookie_flags_and_tampering(factory: Any) -> None:
    """The session cookie is HttpOnly and SameSite=Lax (Secure under https); an altered cookie
    and a cookie from before a password change are refused."""
    make_admin(factory)
    env = WebEnv.start(factory)
    r = env.login()
    cookie = r.headers["set-cookie"]
    assert "pa_admin=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie
    assert env.client.get("/admin", follow_redirects=False).status_code == 200
    value = env.client.cookies["pa_admin"]
    env.client.cookies.set("pa_admin", value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB"))
    assert env.client.get("/admin", follow_redirects=False).status_code == 303
    env.client.cookies.set("pa_admin", value)
    with transaction(factory) as s:
        upsert_admin(s, ADMIN_USER, "a brand new password")
    assert env.client.get("/admin", follow_redirects=False).status_code == 303
    https = WebEnv.start(factory, base_url="https://alerts.example.org")
    https.client = TestClient(https.app, base_url="https://testserver")
    r = https.login(password="a brand new password")
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_login_backoff_and_same_answer_for_unknown_users(factory: Any) -> None:
    """Wrong password and unknown user get the same answer (a redirect back to the form, which
    then says 401 and keeps the name typed); after three failures from this client, it waits
    (429 with Retry-After even for the right password) until the delay has passed (the
    account itself is not locked: see test_admin_sessions)."""
    make_admin(factory)
    env = WebEnv.start(factory)
    unknown = env.login(username="nobody", password="whatever1")
    wrong = env.login(password="wrong password")
    assert unknown.status_code == wrong.status_code == 303
    assert unknown.headers["location"] == wrong.headers["location"]
    pages = []
    for name, password in (("nobody", "whatever1"), (ADMIN_USER, "wrong password")):
        r = env.post_form("/admin/login", "/admin/login",
                          {"username": name, "password": password})
        assert r.status_code == 401
        pages.append(r.text.replace(env.token("/admin/login"), "").replace(name, "NAME"))
    assert pages[0] == pages[1]
    env.login(password="wrong again")
    env.login(password="wrong thrice")
    locked = env.login()
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    context = env.app.state.ctx
    later = datetime.now(UTC) + timedelta(minutes=20)
    context.clock = lambda: later
    assert env.login(password=ADMIN_PASSWORD).status_code == 303


def test_login_redirects_only_inside_the_admin(factory: Any) -> None:
    """The `next` target of the login form cannot send the browser to another site."""
    make_admin(factory)
    env = WebEnv.start(factory)
    for target, expected in [("https://evil.example/x", "/admin"), ("//evil.example", "/admin"),
                             ("/admin/topics", "/admin/topics")]:
        env.client.cookies.clear()
        r = env.post_form("/admin/login", "/admin/login", {
            "username": ADMIN_USER, "password": ADMIN_PASSWORD, "next": target},
            follow_redirects=False)
        assert r.headers["location"] == expected


def test_scraped_titles_are_escaped_in_admin_pages(factory: Any) -> None:
    """A paper title and a source error carrying markup are shown as text in the rule preview,
    the delivery page and the sources page."""
    hostile = '<img src=x onerror=alert(1)> Diffusion <script>alert(2)</script>'
    paper = real_papers()[2]
    import dataclasses

    seed_papers(factory, [dataclasses.replace(paper, title=hostile)], datetime.now(UTC))
    sid = add_subscriber(factory, "e@example.org", rules=("diffusion",))
    with transaction(factory) as s:
        s.add(m.Source(name="evil", kind="feed", url="https://example.org/feed",
                       last_error="<script>alert(3)</script>"))
        d = m.Delivery(subscriber_id=sid, kind="digest", period_key="p", status="failed")
        s.add(d)
        s.flush()
        s.add(m.Match(subscriber_id=sid, paper_id=paper.id, delivery_id=d.id, explanation={}))
        did = d.id
    make_admin(factory)
    env = WebEnv.start(factory)
    env.login()
    token = env.token("/admin")
    preview = env.client.post("/admin/preview", json={"query": "diffusion", "days": 7},
                              headers={"X-CSRF-Token": token})
    assert preview.status_code == 200 and "&lt;img src=x" in preview.text
    assert "<mark>Diffusion</mark>" in preview.text
    for url in (f"/admin/deliveries/{did}", "/admin/sources"):
        text = env.client.get(url).text
        assert "<script>alert" not in text and "<img src=x" not in text, url
        assert "&lt;script&gt;alert" in text, url


def test_security_headers(factory: Any) -> None:
    """Pages carry a CSP without inline script, no-referrer (links hold tokens) and nosniff."""
    env = WebEnv.start(factory)
    h = env.client.get("/signup").headers
    assert "script-src 'self'" in h["content-security-policy"]
    assert "unsafe-inline" not in h["content-security-policy"]
    assert h["referrer-policy"] == "no-referrer" and h["x-content-type-options"] == "nosniff"
    assert "HttpOnly" in h["set-cookie"] and "pa_csrf=" in h["set-cookie"]
