"""Unsubscribes, bounces and complaints by mail: real-shaped messages in a real Maildir, applied
once by `pipeline.mailbox` (and `paperalerts mailbox poll`, and the tick), never twice."""

from __future__ import annotations

import imaplib
import mailbox
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imap_server import ImapServer, start_dovecot, stop_dovecot
from mail_reports import MAIL_DOMAIN, arf, dsn, mailto_reply, our_digest, plain
from paperalerts.core.tokens import make_token
from paperalerts.core.verp import verp_address
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import make_engine, session_factory, transaction
from paperalerts.edges.mailbox import DONE_KEYWORD, MailboxError, MaildirBox, open_mailbox
from paperalerts.errors import ConfigError
from paperalerts.pipeline import subscriptions
from paperalerts.pipeline.mailbox import MailboxConfig, poll_mailbox

SECRET = "s" * 32
NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
CFG = MailboxConfig(secret=SECRET, mail_domain=MAIL_DOMAIN, bounce_threshold=3)
Factory = sessionmaker[Session]


def _subscribers(factory: Factory, *emails: str) -> dict[str, int]:
    """Active subscribers, each sent one digest (so reports about it can be authenticated)."""
    with transaction(factory) as s:
        subs = [m.Subscriber(email=e, status="active") for e in emails]
        s.add_all(subs)
        s.flush()
        s.add_all(_sent(sub.id) for sub in subs)
        return {sub.email: sub.id for sub in subs}


def _sent(sub_id: int) -> m.Delivery:
    return m.Delivery(subscriber_id=sub_id, kind="digest", period_key="2026-03-12",
                      status="sent", attempts=1, created_at=NOW, sent_at=NOW)


def verp(factory: Factory, email: str) -> str:
    """The signed envelope sender of the digest sent to `email` (where its bounces go)."""
    with factory() as s:
        d = s.scalars(select(m.Delivery).join(m.Subscriber).where(m.Subscriber.email == email)
                      ).first()
        assert d is not None
        return verp_address(CFG.verp_base, SECRET, d.id, email)


def bounce(factory: Factory, rcpt: str, **kw: Any) -> bytes:
    """A DSN about `rcpt` sent to the envelope sender of our digest to it, as MTAs do."""
    return dsn(rcpt, to=verp(factory, rcpt), **kw)


def complaint(factory: Factory, rcpt: str) -> bytes:
    """An ARF complaint returning our digest to `rcpt` as stored (Return-Path included)."""
    return arf(rcpt, original=our_digest(rcpt, "y" * 20, return_path=verp(factory, rcpt)))


def _state(factory: Factory, email: str) -> tuple[str, int]:
    with factory() as s:
        sub = s.scalars(select(m.Subscriber).where(m.Subscriber.email == email)).one()
        return sub.status, sub.bounce_score


def _maildir(path: Path, *messages: bytes) -> Path:
    box = mailbox.Maildir(path, create=True)
    for raw in messages:
        box.add(raw)
    box.close()
    return path


def _unsubscribe_request(sid: int, email: str, version: int = 1) -> bytes:
    token = make_token(SECRET, "unsubscribe", sid, version, now=NOW)
    return mailto_reply(our_digest(email, token), subject_prefix="Re: ", sender=email)


def test_maildir_reports_and_requests_are_applied_and_filed(factory: Factory,
                                                            tmp_path: Path) -> None:
    """A hard bounce and a complaint suppress their address, a soft bounce adds one to the score,
    a mailto unsubscribe unsubscribes; ordinary mail and unknown addresses change nothing; every
    message is filed under .Processed and the next poll reads nothing."""
    ids = _subscribers(factory, "ann@example.org", "bob@example.org", "cy@example.org",
                       "dee@example.org")
    path = _maildir(tmp_path / "mail",
                    bounce(factory, "ann@example.org"),
                    complaint(factory, "bob@example.org"),
                    _unsubscribe_request(ids["cy@example.org"], "cy@example.org"),
                    bounce(factory, "dee@example.org", action="delayed", status="4.4.7"),
                    dsn("nobody@example.org"),
                    plain(f"unsubscribe@{MAIL_DOMAIN}", "thanks"))
    box = MaildirBox(path)
    out = poll_mailbox(factory, box, CFG, now=NOW)
    assert out.read == 6
    assert {k: out.counts[k] for k in ("hard", "complaint", "unsubscribed", "soft",
                                       "unauthenticated", "ignored")} == dict.fromkeys(
        ("hard", "complaint", "unsubscribed", "soft", "unauthenticated", "ignored"), 1)
    assert _state(factory, "ann@example.org")[0] == "bounced"
    assert _state(factory, "bob@example.org")[0] == "bounced"
    assert _state(factory, "cy@example.org")[0] == "unsubscribed"
    assert _state(factory, "dee@example.org") == ("active", 1)
    assert not os.listdir(path / "new") and not os.listdir(path / "cur")
    assert len(os.listdir(path / ".Processed" / "cur")) == 6
    assert poll_mailbox(factory, MaildirBox(path), CFG, now=NOW).read == 0
    with factory() as s:
        audited = {a.entity_id for a in s.scalars(select(m.AuditLog)
                                                  .where(m.AuditLog.actor == "mailbox"))}
    assert audited == {str(i) for i in ids.values()}


def test_a_message_seen_again_is_never_counted_twice(db: Factory, tmp_path: Path) -> None:
    """The ledger makes polling idempotent: the same soft bounce delivered again (or left in
    the inbox because marking it failed) adds nothing; three different ones reach the threshold
    (SQLite and PostgreSQL)."""
    factory = db
    _subscribers(factory, "dee@example.org")
    first = bounce(factory, "dee@example.org", action="delayed", status="4.4.7")
    path = _maildir(tmp_path / "mail", first)
    poll_mailbox(factory, MaildirBox(path), CFG, now=NOW)
    _maildir(path, first)  # the very same bytes again
    again = poll_mailbox(factory, MaildirBox(path), CFG, now=NOW)
    assert (again.read, again.counts["seen"]) == (1, 1)
    assert _state(factory, "dee@example.org") == ("active", 1)
    _maildir(path, *(bounce(factory, "dee@example.org", action="delayed", status="4.4.7",
                            boundary=f"b{i}") for i in (2, 3)))
    poll_mailbox(factory, MaildirBox(path), CFG, now=NOW)
    assert _state(factory, "dee@example.org") == ("bounced", 3)


def test_a_mailto_unsubscribe_with_a_reset_link_changes_nothing(factory: Factory,
                                                              tmp_path: Path) -> None:
    """A request carrying a token from before "reset links" is refused like the https link."""
    ids = _subscribers(factory, "cy@example.org")
    with transaction(factory) as s:
        subscriptions.reset_links(s, s.get_one(m.Subscriber, ids["cy@example.org"]), NOW, "t")
    path = _maildir(tmp_path / "mail", _unsubscribe_request(ids["cy@example.org"],
                                                            "cy@example.org"))
    out = poll_mailbox(factory, MaildirBox(path), CFG, now=NOW)
    assert out.counts["unknown"] == 1
    assert _state(factory, "cy@example.org")[0] == "active"


@pytest.mark.parametrize(("url", "says"), [
    ("pop3://host/INBOX", "maildir, imap or imaps"),
    ("imap://host/INBOX", "user, password and host"),
    ("maildir://", "needs a path"),
])
def test_bad_mailbox_urls_say_what_is_wrong(url: str, says: str) -> None:
    """MAILBOX_URL errors name the problem (scheme, credentials, path)."""
    with pytest.raises(ConfigError, match=says):
        open_mailbox(url)


def test_a_folder_that_is_no_maildir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Maildir"):
        open_mailbox(f"maildir://{tmp_path}")


def _sent_to(url: str, *emails: str) -> Factory:
    """Record a sent digest to each of `emails` in the database at `url`; its session factory."""
    factory = session_factory(make_engine(url))
    with transaction(factory) as s:
        for e in emails:
            s.add(_sent(s.scalars(select(m.Subscriber.id).where(m.Subscriber.email == e)).one()))
    return factory


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paperalerts", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


def test_cli_mailbox_poll_and_tick(sqlite_url: str, tmp_path: Path) -> None:
    """`paperalerts mailbox poll` applies the Maildir and prints one summary line; the tick
    reads the mailbox too when MAILBOX_URL is set; unset, `mailbox poll` says so (exit 1)."""
    env = {"PAPERALERTS_DATABASE_URL": sqlite_url, "PAPERALERTS_SECRET_KEY": SECRET,
           "PAPERALERTS_MAIL_FROM": f"Paper alerts <alerts@{MAIL_DOMAIN}>",
           "PAPERALERTS_OUTBOX_DIR": str(tmp_path / "outbox"), "PAPERALERTS_MAILBOX_URL": ""}
    assert _cli(env, "init", "--no-defaults").returncode == 0
    r = _cli(env, "mailbox", "poll")
    assert r.returncode == 1 and "PAPERALERTS_MAILBOX_URL is not set" in r.stderr
    assert _cli(env, "subscribers", "add", "ann@example.org", "--confirmed").returncode == 0
    assert _cli(env, "subscribers", "add", "bob@example.org", "--confirmed").returncode == 0
    factory = _sent_to(sqlite_url, "ann@example.org", "bob@example.org")
    path = _maildir(tmp_path / "mail", bounce(factory, "ann@example.org"))
    env["PAPERALERTS_MAILBOX_URL"] = f"maildir://{path}"
    r = _cli(env, "mailbox", "poll")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("mailbox\t1 read\t0 unsubscribed\t1 hard\t0 soft\t0 complaints\t"
                        "0 ignored\t0 seen\t0 unauthenticated\t0 policy\n")
    _maildir(path, complaint(factory, "bob@example.org"))
    r = _cli(env, "tick")
    assert r.returncode == 0, r.stderr
    assert "mailbox\t1 read\t0 unsubscribed\t0 hard\t0 soft\t1 complaints" in r.stdout
    lines = _cli(env, "subscribers", "list").stdout.splitlines()
    assert [ln.split("\t")[:2] for ln in lines] == [["ann@example.org", "bounced"],
                                                    ["bob@example.org", "bounced"]]




@pytest.fixture
def imap() -> Iterator[ImapServer]:
    """A real Dovecot IMAP server started for the test, in a folder its unprivileged processes
    can read (pytest's own temporary folders are private to the test's user)."""
    root = Path(tempfile.mkdtemp(prefix="pa-dovecot-"))
    root.chmod(0o755)
    proc, server = start_dovecot(root)
    try:
        yield server
    finally:
        stop_dovecot(proc)
        shutil.rmtree(root, ignore_errors=True)


def _append(server: ImapServer, *messages: bytes) -> None:
    c = imaplib.IMAP4("127.0.0.1", server.port)
    c.login(server.user, server.password)
    for raw in messages:
        assert c.append("INBOX", None, None, raw)[0] == "OK"
    c.logout()


def test_imap_mailbox_on_a_real_dovecot(factory: Factory, imap: ImapServer) -> None:
    """Over IMAP (Dovecot): reports and requests are applied and keyworded $PaperalertsDone;
    the next poll fetches nothing, and a message whose keyword is removed again is recognised
    by the ledger and not counted twice."""
    ids = _subscribers(factory, "ann@example.org", "cy@example.org", "dee@example.org")
    _append(imap, bounce(factory, "ann@example.org"),
            _unsubscribe_request(ids["cy@example.org"], "cy@example.org"),
            bounce(factory, "dee@example.org", action="delayed", status="4.4.7"))
    box = open_mailbox(imap.url)
    try:
        out = poll_mailbox(factory, box, CFG, now=NOW)
    finally:
        box.close()
    assert (out.read, out.counts["hard"], out.counts["unsubscribed"], out.counts["soft"]) == (
        3, 1, 1, 1)
    assert _state(factory, "ann@example.org")[0] == "bounced"
    assert _state(factory, "cy@example.org")[0] == "unsubscribed"
    assert _state(factory, "dee@example.org") == ("active", 1)
    c = imaplib.IMAP4("127.0.0.1", imap.port)
    c.login(imap.user, imap.password)
    c.select("INBOX")
    assert c.uid("SEARCH", "KEYWORD", DONE_KEYWORD)[1][0].split() == [b"1", b"2", b"3"]
    box = open_mailbox(imap.url)
    assert poll_mailbox(factory, box, CFG, now=NOW).read == 0
    box.close()
    c.uid("STORE", "3", "-FLAGS", f"({DONE_KEYWORD})")  # as if marking it had failed
    c.logout()
    box = open_mailbox(imap.url)
    again = poll_mailbox(factory, box, CFG, now=NOW)
    box.close()
    assert (again.read, again.counts["seen"]) == (1, 1)
    assert _state(factory, "dee@example.org") == ("active", 1)


def test_imap_wrong_password_is_a_clear_error(imap: ImapServer) -> None:
    """A refused login is a MailboxError naming the server, not a traceback from imaplib."""
    with pytest.raises(MailboxError, match=f"127.0.0.1:{imap.port}"):
        open_mailbox(f"imap://{imap.user}:wrong@127.0.0.1:{imap.port}/INBOX")


def test_celery_task_polls_the_configured_mailbox(sqlite_url: str, tmp_path: Path) -> None:
    """The worker's `paperalerts.poll_mailbox` task (enqueued by the beat tick when MAILBOX_URL
    is set) applies the mailbox like the CLI does; run here as its plain function."""
    env = {"PAPERALERTS_DATABASE_URL": sqlite_url, "PAPERALERTS_SECRET_KEY": SECRET,
           "PAPERALERTS_MAIL_FROM": f"Paper alerts <alerts@{MAIL_DOMAIN}>",
           "PAPERALERTS_OUTBOX_DIR": str(tmp_path / "outbox")}
    assert _cli(env, "init", "--no-defaults").returncode == 0
    assert _cli(env, "subscribers", "add", "ann@example.org", "--confirmed").returncode == 0
    path = _maildir(tmp_path / "mail", bounce(_sent_to(sqlite_url, "ann@example.org"),
                                              "ann@example.org"))
    env["PAPERALERTS_MAILBOX_URL"] = f"maildir://{path}"
    code = "from paperalerts.faces.tasks import mailbox; print(mailbox.run())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    assert _cli(env, "subscribers", "list").stdout.split("\t")[:2] == ["ann@example.org",
                                                                      "bounced"]
