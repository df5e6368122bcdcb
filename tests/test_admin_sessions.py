"""Admin sessions: logout ends the session on the server, failed logins back off per (IP,
username) instead of locking the account, and forwarded headers count only from the proxies
named in TRUSTED_PROXIES (through the real `paperalerts web` server)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from conftest import free_port
from paperalerts.edges.db import models as m
from paperalerts.errors import ConfigError
from paperalerts.faces.web import create_app
from paperalerts.faces.web.app import trusted_proxies
from test_web_cli import _env, _run
from web_support import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    LiveServer,
    WebEnv,
    admin_login,
    csrf_of,
    launch_chromium,
    make_admin,
    settings_for,
)

Factory = sessionmaker[Session]


def _client(env: WebEnv, ip: str) -> TestClient:
    """Another browser on the same app, from `ip`."""
    return TestClient(env.app, client=(ip, 40000))


def _login(client: TestClient, password: str = ADMIN_PASSWORD,
           username: str = ADMIN_USER) -> httpx.Response:
    token = csrf_of(client.get("/admin/login").text)
    return client.post("/admin/login", data={"csrf_token": token, "username": username,
                                             "password": password}, follow_redirects=False)


def test_logout_makes_the_session_cookie_worthless_at_once(db: Factory) -> None:
    """After logout, a copy of the session cookie (kept by anyone) opens nothing, long before
    its 12 h are up; another session of the same admin is not touched; a made-up cookie is
    refused (SQLite and PostgreSQL)."""
    make_admin(db)
    env = WebEnv.start(db)
    assert env.login().status_code == 303
    cookie = env.client.cookies["pa_admin"]
    other = _client(env, "198.51.100.7")
    assert _login(other).status_code == 303
    with db() as s:
        assert s.scalar(select(func.count()).select_from(m.AdminSession)) == 2
    copy = _client(env, "203.0.113.9")
    copy.cookies.set("pa_admin", cookie)
    assert copy.get("/admin", follow_redirects=False).status_code == 200
    copy.cookies.set("pa_admin", secrets.token_urlsafe(32))  # a cookie we never issued
    assert copy.get("/admin", follow_redirects=False).status_code == 303
    r = env.post_form("/admin", "/admin/logout", {}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    copy.cookies.set("pa_admin", cookie)
    refused = copy.get("/admin", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/admin/login")
    assert other.get("/admin", follow_redirects=False).status_code == 200


def test_failed_logins_back_off_per_ip_and_username_not_per_account(factory: Factory) -> None:
    """Three wrong passwords from one address make that address wait (429 with Retry-After,
    even with the right password), unknown usernames alike; the admin logs in at once from
    elsewhere; once the delay has passed the first address may try again."""
    make_admin(factory)
    env = WebEnv.start(factory)
    attacker, admin = _client(env, "203.0.113.9"), _client(env, "198.51.100.7")
    for _ in range(3):
        assert _login(attacker, "wrong password").status_code == 303
        assert _login(attacker, "wrong password", username="nobody").status_code == 303
    for username in (ADMIN_USER, "nobody"):
        waiting = _login(attacker, username=username)
        assert waiting.status_code == 429 and int(waiting.headers["retry-after"]) >= 1
    assert _login(admin).status_code == 303
    later = datetime.now(UTC) + timedelta(seconds=30)
    env.app.state.ctx.clock = lambda: later
    assert _login(attacker).status_code == 303


def test_trusted_proxies_setting_is_checked() -> None:
    """Addresses and networks pass, anything else is named; empty means none."""
    assert trusted_proxies("") == []
    assert trusted_proxies(" 10.0.0.5, 10.0.0.0/8 ,::1") == ["10.0.0.5", "10.0.0.0/8", "::1"]
    with pytest.raises(ConfigError, match=r"'proxy\.example'"):
        trusted_proxies("10.0.0.5, proxy.example")


def test_a_trusted_proxy_names_the_client_for_the_limits(factory: Factory) -> None:
    """Behind a configured proxy, the login backoff keys on the client it reports."""
    make_admin(factory)
    env = WebEnv.start(factory, trusted_proxies="10.0.0.0/8")
    proxy = _client(env, "10.1.2.3")
    for _ in range(3):
        token = csrf_of(proxy.get("/admin/login").text)
        proxy.post("/admin/login", headers={"X-Forwarded-For": "203.0.113.9"}, data={
            "csrf_token": token, "username": ADMIN_USER, "password": "wrong password"})
    token = csrf_of(proxy.get("/admin/login").text)
    data = {"csrf_token": token, "username": ADMIN_USER, "password": ADMIN_PASSWORD}
    assert proxy.post("/admin/login", data=data, headers={"X-Forwarded-For": "203.0.113.9"},
                      follow_redirects=False).status_code == 429
    assert proxy.post("/admin/login", data=data, headers={"X-Forwarded-For": "198.51.100.7"},
                      follow_redirects=False).status_code == 303


@contextmanager
def _web(db_url: str, **extra: str) -> Iterator[str]:
    """`paperalerts web` (the real console command and its uvicorn) on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "paperalerts", "web", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(db_url, **extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _signups(base: str, forwarded_for: list[str]) -> list[int]:
    with httpx.Client(base_url=base, timeout=10) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signup").text)
        assert token
        return [client.post("/signup", headers={"X-Forwarded-For": xff}, data={
            "csrf_token": token.group(1), "email": f"s{i}@example.org", "rules": "graph",
            "timezone": "UTC"}).status_code for i, xff in enumerate(forwarded_for)]


def test_forwarded_for_counts_only_from_configured_proxies(sqlite_url: str) -> None:
    """Through `paperalerts web`: with no TRUSTED_PROXIES a loopback peer cannot dodge the
    per-IP sign-up limit by writing a new X-Forwarded-For each time; with the peer named as a
    proxy, the header is the client (distinct clients pass, one client is limited)."""
    assert _run(sqlite_url, "init", "--no-defaults").returncode == 0
    limit = {"PAPERALERTS_SIGNUP_LIMIT_PER_IP": "2"}
    with _web(sqlite_url, **limit) as base:
        assert _signups(base, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]) == [303, 303, 429]
    with _web(sqlite_url, **limit, PAPERALERTS_TRUSTED_PROXIES="127.0.0.1") as base:
        assert _signups(base, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]) == [303, 303, 303]
        assert _signups(base, ["192.0.2.9"] * 3) == [303, 303, 429]


@pytest.mark.browser
def test_in_the_browser_logging_out_kills_the_copied_cookie(factory: Factory) -> None:
    """Chromium: log in, keep the session cookie, press "Log out"; another browser given the
    kept cookie is sent to the login form."""
    make_admin(factory)
    with launch_chromium() as browser, LiveServer(
            lambda url: create_app(settings_for(url), session_factory=factory)) as server:
        first = browser.new_context()
        page = first.new_page()
        admin_login(page, server.url)
        kept = [c for c in first.cookies() if c["name"] == "pa_admin"]
        assert kept
        page.click("button:has-text('Log out')")
        page.wait_for_url(server.url + "/admin/login")
        second = browser.new_context()
        second.add_cookies(kept)
        other = second.new_page()
        other.goto(server.url + "/admin")
        assert other.url.startswith(server.url + "/admin/login")
        first.close()
        second.close()


