"""Helpers for the web tests: the app on a migrated database with a real SMTP sink, forms with
their CSRF token, an admin login, real papers from the shared fixtures, a live uvicorn server.

    env = WebEnv.start(factory, sink)            # TestClient on create_app(...)
    html = env.client.get("/signup").text
    env.post_form("/signup", "/signup", {"email": ...})
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file, free_port
from mail_fixtures import HF_DAY_2024_03_12, hf_papers
from paperalerts.core.papers import Paper
from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import FileMailer, Mailer, SMTPMailer
from paperalerts.faces.web import create_app
from paperalerts.faces.web.auth import upsert_admin

SECRET = "web-test-secret-" + "x" * 24
ADMIN_USER = "root"
ADMIN_PASSWORD = "correct horse battery staple"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
_URL_RE = re.compile(r"https?://[^\s<>\"]+")


def settings_for(base_url: str = "http://testserver", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": base_url, "secret_key": SECRET,
        "mail_from": "Paper alerts <alerts@example.org>",
        "postal_address": "1 Example Street, Example City", **overrides,
    }
    return Settings(**values)


def csrf_of(html: str) -> str:
    found = _CSRF_RE.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def urls_in(msg: EmailMessage) -> list[str]:
    """Every URL in the text part of a message."""
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return _URL_RE.findall(part.get_content())


def real_papers() -> list[Paper]:
    """The nine papers of the HF daily papers fixture of 2024-03-12."""
    return hf_papers(fixture_file(HF_DAY_2024_03_12))


def seed_papers(factory: sessionmaker[Session], papers: list[Paper], now: datetime) -> None:
    with transaction(factory) as s:
        for p in papers:
            s.add(repo.new_paper_row(p, now))


def add_subscriber(
    factory: sessionmaker[Session], email: str, *, status: str = "active",
    rules: tuple[str, ...] = (), now: datetime | None = None,
) -> int:
    from paperalerts.core.rules import parse, to_text

    now = now or datetime.now(UTC)
    with transaction(factory) as s:
        sub = m.Subscriber(email=email, status=status, created_at=now)
        s.add(sub)
        s.flush()
        for q in rules:
            s.add(m.Rule(subscriber_id=sub.id, query=q, normalized=to_text(parse(q))))
        return sub.id


def make_admin(factory: sessionmaker[Session], username: str = ADMIN_USER,
               password: str = ADMIN_PASSWORD) -> None:
    with transaction(factory) as s:
        upsert_admin(s, username, password)


# One folder for every test app's outbox, removed when the test run ends.
_OUTBOXES = tempfile.TemporaryDirectory(prefix="pa-outboxes-")


@dataclass
class WebEnv:
    app: FastAPI
    client: TestClient
    factory: sessionmaker[Session]
    settings: Settings

    @classmethod
    def start(cls, factory: sessionmaker[Session], smtp_url: str | None = None,
              **overrides: Any) -> WebEnv:
        """The app over `factory`, mailing through the SMTP server at `smtp_url` (else into a
        temporary outbox folder)."""
        settings = settings_for(**overrides)
        mailer: Mailer = (SMTPMailer(smtp_url, timeout=10) if smtp_url
                          else FileMailer(tempfile.mkdtemp(prefix="outbox-", dir=_OUTBOXES.name)))
        app = create_app(settings, mailer=mailer, session_factory=factory)
        return cls(app, TestClient(app), factory, settings)

    def token(self, page_url: str) -> str:
        return csrf_of(self.client.get(page_url).text)

    def post_form(self, page_url: str, action: str, data: dict[str, Any],
                  **kwargs: Any) -> httpx.Response:
        """GET the page (for its CSRF token and cookie), then POST the form to `action`."""
        return self.client.post(action, data={"csrf_token": self.token(page_url), **data},
                                **kwargs)

    def login(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> httpx.Response:
        return self.post_form("/admin/login", "/admin/login",
                              {"username": username, "password": password},
                              follow_redirects=False)


class LiveServer:
    """The app served by uvicorn in a thread on 127.0.0.1 and a free port."""

    def __init__(self, app_factory: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app_factory(self.url)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)



CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch_chromium() -> Any:
    """Debian's Chromium driven by Playwright, as a context manager yielding the browser; skips
    (fails under CI=true) when it is not installed."""
    import contextlib
    import os

    import pytest

    from conftest import IN_CI

    if not os.access(CHROMIUM, os.X_OK):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (CI=true: browser tests must not skip)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    @contextlib.contextmanager
    def run() -> Any:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()

    return run()


def admin_login(page: Any, base_url: str) -> None:
    """Log the browser page in as the test admin (see `make_admin`)."""
    page.goto(base_url + "/admin/login")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/admin")


def api_token(env: WebEnv) -> dict[str, str]:
    """A token made the way an admin makes one: on the Tokens page, shown once."""
    make_admin(env.factory)
    env.login()
    page = env.post_form("/admin/tokens", "/admin/tokens", {"name": "script"}).text
    start = page.index('id="new-token">') + len('id="new-token">')
    token = page[start:page.index("</div>", start)]
    assert token.startswith("pa_")
    with env.factory() as s:
        stored = s.scalars(select(m.ApiToken.token_hash)).one()
    assert token not in stored  # only the hash is kept
    env.client.cookies.clear()
    return {"Authorization": f"Bearer {token}"}
