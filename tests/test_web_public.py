"""The public side over HTTP: sign-up with double opt-in through a real SMTP sink, the manage
page, one-click unsubscribe, the Atom feed and the online view of a digest."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.schedule import next_digest_at
from paperalerts.core.subscribers import subscriber_links
from paperalerts.core.tokens import make_token
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from smtp_sink import SMTPSink
from tamper_support import tamper, tamper_url
from web_support import SECRET, WebEnv, add_subscriber, real_papers, seed_papers, urls_in


def _sub(factory: sessionmaker[Session], email: str) -> m.Subscriber:
    with factory() as s:
        row = s.scalars(select(m.Subscriber).where(m.Subscriber.email == email)).one()
        s.expunge(row)
        return row


def _signup(env: WebEnv, **data: Any) -> Any:
    form = {"email": "ann@example.org", "frequency": "daily", "hour": "7", "weekday": "0",
            "timezone": "Europe/Berlin", "rules": "title:diffusion", **data}
    return env.post_form("/signup", "/signup", form)


def test_signup_confirm_link_from_the_email_activates(factory: Any, sink: SMTPSink) -> None:
    """Sign-up stores a pending subscriber with its rules and schedule and mails a confirm link;
    opening the link shows a button (prefetchers confirm nobody); posting it activates and lands
    on the manage page."""
    env = WebEnv.start(factory, sink.url)
    r = _signup(env, email="Ann@Example.ORG")
    assert r.status_code == 200 and "Check your inbox" in r.text
    sub = _sub(factory, "ann@example.org")
    assert (sub.status, sub.frequency, sub.send_hour, sub.timezone) == (
        "pending", "daily", 7, "Europe/Berlin")
    assert len(sink.messages) == 1 and sink.messages[0].rcpt_tos == ("ann@example.org",)
    msg = sink.messages[0].message
    assert "List-Unsubscribe" not in msg
    confirm = next(u for u in urls_in(msg) if "/confirm/" in u)
    path = confirm.removeprefix("http://testserver")
    page = env.client.get(path)
    assert page.status_code == 200 and 'method="post"' in page.text
    assert _sub(factory, "ann@example.org").status == "pending"
    r = env.post_form(path, path, {}, follow_redirects=False)
    assert r.status_code == 303 and "/manage/" in r.headers["location"]
    sub = _sub(factory, "ann@example.org")
    assert sub.status == "active" and sub.confirmed_at is not None
    with factory() as s:
        rules = list(s.scalars(select(m.Rule.query).where(m.Rule.subscriber_id == sub.id)))
    assert rules == ["title:diffusion"]
    manage = env.client.get(r.headers["location"])
    assert "Your subscription is confirmed" in manage.text and "title:diffusion" in manage.text


@pytest.mark.parametrize("status", ["active", "pending", "unsubscribed", "paused"])
def test_signup_answer_is_byte_identical_for_new_and_existing(
    db: sessionmaker[Session], status: str
) -> None:
    """The answer (status, headers that matter, body bytes) does not reveal that an address is
    already known, whatever its state; on SQLite and PostgreSQL."""
    add_subscriber(db, "known@example.org", status=status, rules=("graph",))
    env = WebEnv.start(db)
    known = _signup(env, email="known@example.org")
    new = _signup(env, email="brand-new@example.org")
    assert known.status_code == new.status_code == 200
    assert known.content == new.content
    assert "set-cookie" not in known.headers and "set-cookie" not in new.headers


def test_signup_does_not_change_a_confirmed_subscription(factory: Any) -> None:
    """Only the mailbox's links change a confirmed subscription: a sign-up for it leaves its
    rules and schedule as they were."""
    sid = add_subscriber(factory, "known@example.org", rules=("graph neural",))
    env = WebEnv.start(factory)
    _signup(env, email="known@example.org", rules="quantum", frequency="weekly")
    with factory() as s:
        assert list(s.scalars(select(m.Rule.query).where(m.Rule.subscriber_id == sid))) == [
            "graph neural"]
        assert s.get_one(m.Subscriber, sid).frequency == "daily"


def test_signup_rule_error_is_shown_at_its_position(factory: Any) -> None:
    """A bad rule comes back with the parser's message, its position in the text and a caret
    under it; nothing is stored."""
    env = WebEnv.start(factory)
    r = _signup(env, rules="diffusion\ngraph AND (model")
    assert r.status_code == 400
    assert "line 2: unbalanced parenthesis at 10" in r.text
    assert re.search(r'<pre class="caret">graph AND \(model\n {10}<span class="at">\^</span>',
                     r.text)
    with factory() as s:
        assert s.scalars(select(m.Subscriber)).first() is None


def test_signup_rate_limits(factory: Any, sink: SMTPSink) -> None:
    """Per IP: past the limit a 429 with Retry-After. Per address: the same answer, but no
    more confirmation emails than the limit."""
    env = WebEnv.start(factory, sink.url, signup_limit_per_ip=4, signup_limit_per_address=2)
    answers = [_signup(env, email="same@example.org") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].content == answers[2].content
    assert len(sink.messages) == 2
    assert _signup(env, email="other@example.org").status_code == 200
    limited = _signup(env, email="third@example.org")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_signup_needs_the_csrf_token(factory: Any) -> None:
    """A sign-up posted without the form's token (a cross-site form) is refused."""
    env = WebEnv.start(factory)
    env.client.get("/signup")
    r = env.client.post("/signup", data={"email": "x@example.org", "rules": "graph"})
    assert r.status_code == 403
    with factory() as s:
        assert s.scalars(select(m.Subscriber)).first() is None


def _links(sid: int, version: int = 1) -> Any:
    return subscriber_links("http://testserver", SECRET, sid, version, now=datetime.now(UTC))


def test_confirm_refuses_tampered_expired_and_wrong_purpose_tokens(factory: Any) -> None:
    """Confirm links: an altered one, one older than the limit, and a manage token are refused,
    and the subscriber stays pending."""
    sid = add_subscriber(factory, "p@example.org", status="pending")
    env = WebEnv.start(factory, confirm_max_age_hours=72)
    good = make_token(SECRET, "confirm", sid, 1)
    old = make_token(SECRET, "confirm", sid, 1, now=datetime.now(UTC) - timedelta(hours=73))
    tampered = tamper(good)
    for token, words in [(tampered, "not valid"), (old, "expired"),
                         (make_token(SECRET, "manage", sid, 1), "not valid")]:
        r = env.client.get(f"/confirm/{token}")
        assert r.status_code == 400 and words in r.text
    assert _sub(factory, "p@example.org").status == "pending"
    assert env.client.get(f"/confirm/{good}").status_code == 200


def test_one_click_unsubscribe_without_cookies_is_immediate_and_idempotent(
    db: sessionmaker[Session],
) -> None:
    """RFC 8058: POST with List-Unsubscribe=One-Click and no cookie unsubscribes at once with a
    200 (no redirect, no cookie set); again is harmless; a confirm link from before does not
    bring the subscription back."""
    sid = add_subscriber(db, "u@example.org", rules=("graph",))
    env = WebEnv.start(db)
    old_confirm = make_token(SECRET, "confirm", sid, 1)
    url = _links(sid).unsubscribe.removeprefix("http://testserver")
    bare = TestClient(env.app)
    for _ in range(2):
        r = bare.post(url, content=b"List-Unsubscribe=One-Click", follow_redirects=False,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and "You are unsubscribed" in r.text
        assert "set-cookie" not in r.headers and not bare.cookies
        assert _sub(db, "u@example.org").status == "unsubscribed"
    r = env.post_form(f"/confirm/{old_confirm}", f"/confirm/{old_confirm}", {})
    assert r.status_code == 400 and _sub(db, "u@example.org").status == "unsubscribed"
    with db() as s:
        actions = list(s.scalars(select(m.AuditLog.action).where(m.AuditLog.entity_id == str(sid))))
    assert actions == ["status"]


def test_unsubscribe_page_shows_one_post_button_and_resubscribe_link(factory: Any) -> None:
    """GET shows one button posting to the same URL and changes nothing; the done page links to
    the manage page, where "Resubscribe" makes the subscription active again."""
    sid = add_subscriber(factory, "v@example.org")
    env = WebEnv.start(factory)
    url = _links(sid).unsubscribe.removeprefix("http://testserver")
    page = env.client.get(url).text
    assert page.count("<button") == 1 and f'<form method="post" action="{url}">' in page
    assert _sub(factory, "v@example.org").status == "active"
    done = env.client.post(url, data={"List-Unsubscribe": "One-Click"}).text
    manage = re.search(r'href="http://testserver(/manage/[^"]+)">Resubscribe', done)
    assert manage is not None
    r = env.post_form(manage.group(1), manage.group(1) + "/resume", {}, follow_redirects=False)
    assert r.status_code == 303 and _sub(factory, "v@example.org").status == "active"


def test_unsubscribe_refuses_tampered_and_revoked_links(factory: Any) -> None:
    """A changed token, or one from before the links were revoked (token version bumped), does
    nothing."""
    sid = add_subscriber(factory, "w@example.org")
    env = WebEnv.start(factory)
    url = _links(sid).unsubscribe.removeprefix("http://testserver")
    assert env.client.post(tamper_url(url)).status_code == 400
    with transaction(factory) as s:
        s.get_one(m.Subscriber, sid).token_version = 2
    assert env.client.post(url).status_code == 400
    assert _sub(factory, "w@example.org").status == "active"


def test_manage_page_rules_schedule_and_pause(factory: Any) -> None:
    """The manage link edits rules (bad ones refused with their position), the schedule (next
    digest recomputed in the subscriber's zone) and pauses; every change is audited as the
    subscriber and rule changes bump the rules version."""
    sid = add_subscriber(factory, "x@example.org")
    env = WebEnv.start(factory)
    page = _links(sid).manage.removeprefix("http://testserver")
    with factory() as s:
        version = repo.rules_version(s)
    r = env.post_form(page, page + "/rules", {"query": 'title:"open', "name": "x"})
    assert r.status_code == 400 and "unterminated" in r.text and 'class="caret"' in r.text
    r = env.post_form(page, page + "/rules", {"query": "diffusion model", "name": "Diff"},
                      follow_redirects=False)
    assert r.status_code == 303
    with factory() as s:
        rule = s.scalars(select(m.Rule).where(m.Rule.subscriber_id == sid)).one()
        assert repo.rules_version(s) > version  # moved (the flush hook may move it too)
    r = env.post_form(page, f"{page}/rules/{rule.id}", {"query": "diffusion OR consistency",
                                                        "name": "Diff", "enabled": "1"})
    assert r.status_code == 200 and "diffusion OR consistency" in r.text
    env.post_form(page, page + "/settings", {"frequency": "weekly", "hour": "6",
                                             "weekday": "2", "timezone": "Asia/Tokyo"})
    sub = _sub(factory, "x@example.org")
    assert (sub.frequency, sub.send_hour, sub.weekday, sub.timezone) == (
        "weekly", 6, 2, "Asia/Tokyo")
    assert sub.next_digest_at is not None
    assert sub.next_digest_at == next_digest_at("weekly", 6, 2, "Asia/Tokyo",
                                                sub.next_digest_at - timedelta(days=7))
    bad = env.post_form(page, page + "/settings", {"frequency": "daily", "hour": "6",
                                                   "timezone": "America"})
    assert bad.status_code == 400 and "unknown timezone" in bad.text
    env.post_form(page, page + "/pause", {})
    assert _sub(factory, "x@example.org").status == "paused"
    env.post_form(page, f"{page}/rules/{rule.id}/delete", {})
    with factory() as s:
        assert s.scalars(select(m.Rule).where(m.Rule.subscriber_id == sid)).first() is None
        actors = set(s.scalars(select(m.AuditLog.actor)))
    assert actors == {"subscriber"}


def test_preview_now_mails_the_papers_the_rules_match(factory: Any, sink: SMTPSink) -> None:
    """"Send me a preview now" mails a digest of the last days' papers the subscriber's rules
    match (the real fixture's diffusion papers), with a one-click unsubscribe header; the
    per-subscriber limit engages."""
    papers = real_papers()
    seed_papers(factory, papers, datetime.now(UTC))
    sid = add_subscriber(factory, "y@example.org", rules=("title:diffusion",))
    env = WebEnv.start(factory, sink.url, preview_limit_per_subscriber=1)
    page = _links(sid).manage.removeprefix("http://testserver")
    r = env.post_form(page, page + "/preview", {})
    wanted = [p.title for p in papers if "diffusion" in p.title.lower()]
    assert r.status_code == 200 and f"A preview with {len(wanted)} papers was sent" in r.text
    msg = sink.messages[-1].message
    assert msg["Subject"].startswith("Preview: ")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    for title in wanted:
        assert title.split(":")[0] in text
    assert env.post_form(page, page + "/preview", {}).status_code == 429
    assert len(sink.messages) == 1


HOSTILE = '<script>alert("x")</script> & <b>bold</b> Diffusion'


def _hostile_match(factory: sessionmaker[Session], sid: int, view_key: str | None) -> None:
    papers = real_papers()
    now = datetime.now(UTC)
    hostile = dataclasses.replace(papers[0], title=HOSTILE)
    seed_papers(factory, [hostile], now)
    with transaction(factory) as s:
        rule_id = s.scalars(select(m.Rule.id).where(m.Rule.subscriber_id == sid)).first()
        d = None
        if view_key:
            d = m.Delivery(subscriber_id=sid, kind="digest", period_key="2024-03-12",
                           status="sent", view_key=view_key, sent_at=now)
            s.add(d)
            s.flush()
        s.add(m.Match(subscriber_id=sid, paper_id=hostile.id, matched_at=now,
                      delivery_id=d.id if d else None,
                      explanation={"rules": [{"rule_id": rule_id, "topic_id": None,
                                              "name": "mine", "query": "diffusion",
                                              "terms": ["diffusion"], "hits": []}]}))


def test_feed_is_atom_and_escapes_scraped_titles(factory: Any) -> None:
    """The feed URL serves Atom whose entries carry the paper's title exactly, markup escaped;
    an altered feed token is a 404."""
    sid = add_subscriber(factory, "f@example.org", rules=("diffusion",))
    _hostile_match(factory, sid, None)
    env = WebEnv.start(factory)
    url = _links(sid).feed.removeprefix("http://testserver")
    r = env.client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    assert b"<script>" not in r.content
    parsed = feedparser.parse(r.content)
    assert parsed.version == "atom10"
    assert parsed.entries[0].title == HOSTILE
    assert env.client.get(tamper_url(url)).status_code == 404


def test_view_online_shows_a_sent_digest_escaped(factory: Any) -> None:
    """/d/KEY shows the digest a sent delivery carried, scraped text escaped, under a CSP that
    allows no script; an unknown key is a 404."""
    sid = add_subscriber(factory, "o@example.org", rules=("diffusion",))
    _hostile_match(factory, sid, "k" * 32)
    env = WebEnv.start(factory)
    r = env.client.get("/d/" + "k" * 32)
    assert r.status_code == 200
    assert "&lt;script&gt;" in r.text and "<script>alert" not in r.text
    assert "script-src" not in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert env.client.get("/d/" + "q" * 32).status_code == 404


def test_validate_reports_errors_with_positions(factory: Any) -> None:
    """The live validator answers the normalised rule, or the parser's error and position."""
    env = WebEnv.start(factory)
    ok = env.client.post("/validate", json={"query": "Diffusion  model"}).json()
    assert ok["ok"] is True and ok["normalized"] == "Diffusion AND model"
    bad = env.client.post("/validate", json={"query": "titel:x"}).json()
    assert bad["ok"] is False and bad["position"] == 0 and "title" in bad["hint"]


def test_health_and_metrics_are_served(factory: Any) -> None:
    """The operations routes are part of the app: /healthz answers 200 JSON while the database
    answers; /metrics parses as Prometheus text and, on a new database, reports every delivery
    status and source health at zero and no tick gauge (the tick never ran)."""
    from prometheus_client.parser import text_string_to_metric_families

    env = WebEnv.start(factory)
    r = env.client.get("/healthz")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    metrics = env.client.get("/metrics")
    assert metrics.status_code == 200
    samples = {
        (s.name, tuple(s.labels.values())): s.value
        for fam in text_string_to_metric_families(metrics.text)
        for s in fam.samples
    }
    deliveries = {k[1]: v for k, v in samples.items() if k[0] == "paperalerts_deliveries"}
    assert deliveries == {("failed",): 0, ("queued",): 0, ("sending",): 0, ("sent",): 0}
    healths = {k[1]: v for k, v in samples.items() if k[0] == "paperalerts_sources"}
    assert healths == {("degraded",): 0, ("failing",): 0, ("ok",): 0, ("unchecked",): 0}
    assert samples[("paperalerts_incidents_open", ())] == 0
    assert not any(name.startswith("paperalerts_last_tick") for name, _ in samples)
