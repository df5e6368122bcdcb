"""Addresses the mailer would refuse are refused where they enter (sign-up, admin, CLI, API,
import), by the one check the message builder also makes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.message import build_message
from paperalerts.core.render import Rendered
from paperalerts.core.subscribers import InvalidAddress, normalize_email
from paperalerts.edges.db import models as m
from web_support import WebEnv, api_token

ENCODED_WORD = "=?utf-8?q?a?=@example.org"
NOW = datetime(2026, 8, 1, 6, tzinfo=UTC)
# atext specials (RFC 5322) plus the pieces of an encoded word: what email's parser trips over.
LOCAL = st.text(alphabet="ab=?_.-+!#$%&'*/^`{|}~Q", min_size=1, max_size=24)


def _message_to(addr: str) -> object:
    return build_message(
        Rendered("s", "t", "<p>h</p>"), from_addr="alerts@example.org", to_addr=addr,
        to_name="", delivery_id=1, now=NOW, base_url="https://a.example",
        unsubscribe_token=None, list_id=None, mail_domain="example.org",
    )


def test_an_encoded_word_address_is_refused_with_the_reason() -> None:
    """``=?utf-8?q?a?=@example.org`` passes the email syntax check but email's header parser
    reads it as an encoded word: refused at entry, saying so."""
    with pytest.raises(InvalidAddress, match="cannot be written in an email header"):
        normalize_email(ENCODED_WORD)


@settings(max_examples=300, deadline=None)
@given(local=LOCAL)
def test_every_address_accepted_at_entry_is_one_the_mailer_takes(local: str) -> None:
    """Property: an address `normalize_email` accepts builds a message addressed to exactly it
    (the mailer never refuses, in the background, what sign-up accepted)."""
    try:
        addr = normalize_email(f"{local}@example.org")
    except InvalidAddress:
        return
    msg = _message_to(addr)
    assert msg["To"].addresses[0].addr_spec == addr  # type: ignore[attr-defined]


def test_sign_up_refuses_the_address_with_a_message(factory: sessionmaker[Session]) -> None:
    """The public sign-up form answers 400 naming the problem; no subscriber, no mail."""
    env = WebEnv.start(factory)
    form = {"email": ENCODED_WORD, "frequency": "daily", "hour": "7", "weekday": "0",
            "timezone": "UTC", "rules": "diffusion"}
    r = env.post_form("/signup", "/signup", form)
    assert r.status_code == 400
    assert "cannot be written in an email header" in r.text
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(m.Subscriber)) == 0


def test_the_api_refuses_the_address_with_422(factory: sessionmaker[Session]) -> None:
    """POST /api/v1/subscribers answers 422 on ``email``, not 201 (and no later failure)."""
    env = WebEnv.start(factory)
    r = env.client.post("/api/v1/subscribers", headers=api_token(env),
                        json={"email": ENCODED_WORD})
    assert r.status_code == 422, r.text
    assert "cannot be written in an email header" in r.text


def test_the_cli_refuses_the_address(sqlite_url: str) -> None:
    """`subscribers add` exits non-zero with the reason; nothing stored."""
    env = {**os.environ, "PAPERALERTS_DATABASE_URL": sqlite_url}
    cli = [sys.executable, "-m", "paperalerts"]
    subprocess.run([*cli, "init", "--no-defaults"], env=env, capture_output=True, timeout=120,
                   check=True)
    r = subprocess.run([*cli, "subscribers", "add", ENCODED_WORD, "--confirmed"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "cannot be written in an email header" in r.stderr
