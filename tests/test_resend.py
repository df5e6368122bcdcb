"""Bulk resend of failed deliveries (issue 21 item 2) from the CLI, the API and the admin: every
failed digest that still holds papers gets one new delivery with them, once however often it is
asked, audited; the papers then arrive once each at a real SMTP sink."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.pipeline import dispatch_due_digests, send_due
from paperalerts.pipeline.resend import resend_deliveries
from smtp_sink import SMTPSink
from test_deliver import CFG, NOW, add_subscriber, ingest, paper_ids_in
from web_support import WebEnv, api_token, make_admin

Factory = sessionmaker[Session]
WORDS = ["model", "video", "language"]


def failed_digests(db: Factory, sink: SMTPSink, mailer: object) -> dict[int, set[str]]:
    """Three digests the relay refused for good (554): failed, their papers still on them."""
    for i, w in enumerate(WORDS):
        add_subscriber(db, f"r{i}@example.org", w)
    ingest(db)
    ids = dispatch_due_digests(db, CFG, now=NOW)
    sink.fail_next("DATA", len(ids), "554 5.6.0 message refused")
    outs = send_due(db, ids, mailer=mailer, cfg=CFG, clock=lambda: NOW)  # type: ignore[arg-type]
    assert {o.status for o in outs} == {"failed"}
    with db() as s:
        rows = s.execute(select(m.Match.delivery_id, m.Match.paper_id)).all()
    papers: dict[int, set[str]] = {}
    for did, pid in rows:
        papers.setdefault(did, set()).add(pid)
    return papers


def queued_resends(db: Factory) -> dict[int, int]:
    """resend_of -> new delivery id."""
    with db() as s:
        q = select(m.Delivery.resend_of, m.Delivery.id).where(m.Delivery.resend_of.is_not(None))
        return {int(a): int(b) for a, b in s.execute(q)}


def cli(db_url: str, sink: SMTPSink, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PAPERALERTS_DATABASE_URL": db_url, "PAPERALERTS_SECRET_KEY": "k" * 32,
           "PAPERALERTS_SMTP_URL": sink.url, "PAPERALERTS_SMTP_RATE": "0"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "paperalerts", *args], capture_output=True,
                          text=True, env=env, timeout=180)  # fmt: skip


def test_cli_resends_every_failed_digest_once_and_they_arrive_once(
    sqlite_url: str, factory: Factory, sink: SMTPSink, mailer: object
) -> None:
    """`digests resend --failed` (after a --dry-run that changes nothing) queues each failed
    digest again; a second run finds none; `digests send` delivers each paper once."""
    papers = failed_digests(factory, sink, mailer)
    dry = cli(sqlite_url, sink, "digests", "resend", "--failed", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip().endswith("3 would be resent") and not queued_resends(factory)
    r = cli(sqlite_url, sink, "digests", "resend", "--failed")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "3 resent, 0 not resent"
    assert set(queued_resends(factory)) == set(papers)
    again = cli(sqlite_url, sink, "digests", "resend", *map(str, papers))
    assert again.returncode == 1 and "resent already" in again.stdout
    bad = cli(sqlite_url, sink, "digests", "resend", "--failed", "--since", "yesterday")
    assert bad.returncode == 1 and "--since" in bad.stderr
    sent = cli(sqlite_url, sink, "digests", "send")
    assert sent.returncode == 0, sent.stderr
    got = Counter(str(r.message["Message-ID"]) for r in sink.messages)
    assert len(got) == 3 and set(got.values()) == {1}
    assert sorted(map(sorted, (paper_ids_in(r.data) for r in sink.messages))) == sorted(
        map(sorted, papers.values()))


def test_api_resends_failed_deliveries_in_bulk_and_by_id(db: Factory, sink: SMTPSink,
                                                         mailer: object) -> None:
    """POST /api/v1/deliveries/resend with failed: true resends all three (audited as the
    token); by ids, the same ones are refused as resent already, an unknown id as missing; a
    body with both ids and failed is a 422."""
    papers = failed_digests(db, sink, mailer)
    env = WebEnv.start(db)
    auth = api_token(env)
    r = env.client.post("/api/v1/deliveries/resend", headers=auth, json={"failed": True})
    assert r.status_code == 200, r.text
    assert (r.json()["resent"], r.json()["refused"]) == (3, 0)
    assert set(queued_resends(db)) == set(papers)
    ids = [*papers, 999_999]
    r = env.client.post("/api/v1/deliveries/resend", headers=auth, json={"ids": ids})
    reasons = {d["id"]: d["reason"] for d in r.json()["deliveries"]}
    assert r.json()["resent"] == 0 and reasons[999_999] == "no such delivery"
    assert {reasons[i] for i in papers} == {"resent already"}
    both = env.client.post("/api/v1/deliveries/resend", headers=auth,
                           json={"ids": [1], "failed": True})  # fmt: skip
    assert both.status_code == 422
    with db() as s:
        actors = Counter(s.scalars(select(m.AuditLog.actor).where(m.AuditLog.action == "resend")))
    assert actors == Counter({"api:script": 3})


def test_admin_bulk_resend_queues_every_failed_digest(factory: Factory, sink: SMTPSink,
                                                      mailer: object) -> None:
    """The deliveries page offers "Resend failed deliveries (3)"; posting it queues all three
    and the page then says so; the single-delivery resend refuses one resent already."""
    papers = failed_digests(factory, sink, mailer)
    make_admin(factory)
    env = WebEnv.start(factory)
    env.login()
    page = env.client.get("/admin/deliveries")
    assert "Resend failed deliveries (3)" in page.text
    r = env.post_form("/admin/deliveries", "/admin/deliveries/resend", {"since": "", "kind": ""})
    assert r.status_code == 200 and "3 failed deliveries queued again" in r.text
    assert set(queued_resends(factory)) == set(papers)
    one = next(iter(papers))
    r = env.post_form(f"/admin/deliveries/{one}", f"/admin/deliveries/{one}/resend", {})
    assert r.status_code == 409 and "resent already" in r.text
    assert len(resend_deliveries(factory, list(papers), now=NOW, actor="t")) == 3
    assert len(queued_resends(factory)) == 3
