"""`paperalerts run` as a person runs it on a laptop: no PAPERALERTS_SMTP_URL (mail goes to .eml
files in the outbox) and no PAPERALERTS_BASE_URL, on a port of their choosing. The confirm link in
the sign-up email must lead back to that server (it used to name the default port 8000)."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.faces.cli_run import default_base_url
from test_run_service import Service, wait_for


def test_links_follow_the_served_address_unless_base_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without PAPERALERTS_BASE_URL the links name the host and port `run` serves on (any
    interface -> localhost; IPv6 in brackets); a BASE_URL that was set is left alone."""
    monkeypatch.delenv("PAPERALERTS_BASE_URL", raising=False)
    unset = Settings()
    assert "base_url" not in unset.model_fields_set
    assert default_base_url(unset, "127.0.0.1", 8765) == "http://127.0.0.1:8765"
    assert default_base_url(unset, "0.0.0.0", 9000) == "http://localhost:9000"
    assert default_base_url(unset, "::1", 9000) == "http://[::1]:9000"
    assert default_base_url(Settings(base_url="https://alerts.example.org"),
                            "127.0.0.1", 8765) is None


@pytest.fixture
def laptop(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    for name in ("PAPERALERTS_SMTP_URL", "PAPERALERTS_BASE_URL"):
        service.env.pop(name)
    try:
        yield service
    finally:
        service.close()


@pytest.mark.slow
def test_run_signup_and_confirm_through_the_eml_outbox(laptop: Service) -> None:
    """`run --port P` with the file backend: a sign-up writes the confirm email as an .eml file
    in outbox/; its link points at P, and following it (the button posts) activates the
    subscriber and lands on the manage page."""
    laptop.start()
    with httpx.Client(base_url=laptop.url, timeout=10) as web:
        form = web.get("/signup").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        r = web.post("/signup", data={
            "csrf_token": token.group(1), "email": "ada@example.org", "rules": "diffusion",
            "frequency": "daily", "hour": "8", "weekday": "0", "timezone": "UTC"})
        # post/redirect/get: the answer is a redirect to the (same for everyone) done page
        assert r.status_code == 303
        assert "Check your inbox" in web.get(r.headers["location"]).text
        outbox = laptop.tmp / "outbox"
        wait_for(lambda: list(outbox.glob("*.eml")), 30, "the confirm .eml file")
        (eml,) = outbox.glob("*.eml")
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert str(msg["To"]) == "ada@example.org"
        body = msg.get_body(("plain",))
        assert body is not None
        link = re.search(r"\S+/confirm/\S+", body.get_content())
        assert link is not None and link.group(0).startswith(f"{laptop.url}/confirm/")
        page = web.get(link.group(0))
        assert page.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        done = web.post(link.group(0), data={"csrf_token": token.group(1)})
        assert done.status_code == 303 and "/manage/" in done.headers["location"]
        assert "Your subscription is confirmed" in web.get(done.headers["location"]).text
    with laptop.db()() as s:
        assert s.scalar(select(m.Subscriber.status)) == "active"
