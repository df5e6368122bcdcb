"""The admin over HTTP: subscribers (search, create, delete with data, CSV export and import
with a dry run), topics with counts, applying a rule to many, sources with "scrape now" against
a real local HTTP server, the delivery log with resend, and the dashboard counts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from web_support import WebEnv, add_subscriber, make_admin, real_papers, seed_papers


def _admin(factory: sessionmaker[Session], **overrides: Any) -> WebEnv:
    make_admin(factory)
    env = WebEnv.start(factory, **overrides)
    assert env.login().status_code == 303
    return env


def _count(factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_subscribers_search_create_and_delete_with_their_data(factory: Any) -> None:
    """Create through the form (rules validated), find by search and status, delete with rules,
    matches and deliveries."""
    env = _admin(factory)
    bad = env.post_form("/admin/subscribers/new", "/admin/subscribers", {
        "email": "new@example.org", "rules": "ok\nfoo AND", "timezone": "UTC"})
    assert bad.status_code == 400 and "line 2" in bad.text
    r = env.post_form("/admin/subscribers/new", "/admin/subscribers", {
        "email": "New@Example.org", "name": "Nia", "status": "active", "rules": "graph\nquantum",
        "timezone": "Europe/Rome", "frequency": "daily", "hour": "9"}, follow_redirects=False)
    assert r.status_code == 303
    sid = int(r.headers["location"].split("/")[-1].split("?")[0])
    add_subscriber(factory, "other@example.org", status="paused")
    found = env.client.get("/admin/subscribers?q=nia").text
    assert "new@example.org" in found and "other@example.org" not in found
    paused = env.client.get("/admin/subscribers?status=paused").text
    assert "other@example.org" in paused and "new@example.org" not in paused
    papers = real_papers()
    seed_papers(factory, papers[:1], datetime.now(UTC))
    with transaction(factory) as s:
        d = m.Delivery(subscriber_id=sid, kind="digest", period_key="x", status="sent")
        s.add(d)
        s.flush()
        s.add(m.Match(subscriber_id=sid, paper_id=papers[0].id, delivery_id=d.id))
    env.post_form(f"/admin/subscribers/{sid}", f"/admin/subscribers/{sid}/delete", {})
    for model in (m.Subscriber, m.Rule, m.Match, m.Delivery):
        assert _count(factory, model, model.id > 0) == (1 if model is m.Subscriber else 0)


def test_csv_export_and_import_with_dry_run(factory: Any) -> None:
    """Export lists every subscriber with topics and rules (formula-looking cells defused);
    import reports every problem of every row with its line, writes nothing on a dry run,
    creates new addresses and updates known ones by email for real."""
    sid = add_subscriber(factory, "ann@example.org", rules=("-survey diffusion", "graph"))
    with transaction(factory) as s:
        s.add(m.Topic(id=7, name="Agents", query="agent*", normalized="agent*"))
        s.flush()
        s.add(m.SubscriberTopic(subscriber_id=sid, topic_id=7))
    env = _admin(factory)
    rows = list(csv.DictReader(io.StringIO(env.client.get("/admin/subscribers/export.csv").text)))
    assert rows == [{"email": "ann@example.org", "name": "", "status": "active",
                     "frequency": "daily", "send_hour": "8", "weekday": "0", "timezone": "UTC",
                     "topics": "Agents", "rules": "'-survey diffusion\ngraph"}]
    upload = (
        "email,status,timezone,topics,rules\n"
        "bob@example.org,active,Asia/Tokyo,Agents,\"'-survey llm\nagent*\"\n"
        "not-an-address,active,UTC,,\n"
        "cy@example.org,active,UTC,,title:(\n"
        "ann@example.org,paused,UTC,,\n"
        "dee@example.org,paused,Mars/Base,,\n"
    )
    dry = env.post_form("/admin/subscribers/import", "/admin/subscribers/import",
                        {"text": upload, "dry_run": "1"})
    assert "would create 1, update 1" in dry.text and "3 row(s) skipped" in dry.text
    assert "unknown timezone" in dry.text and "unbalanced parenthesis" in dry.text
    assert _count(factory, m.Subscriber, m.Subscriber.id > 0) == 1
    done = env.post_form("/admin/subscribers/import", "/admin/subscribers/import",
                         {"text": upload})
    assert "imported: created 1, updated 1" in done.text
    with factory() as s:
        bob = s.scalars(select(m.Subscriber).where(m.Subscriber.email == "bob@example.org")).one()
        rules = list(s.scalars(select(m.Rule.query).where(m.Rule.subscriber_id == bob.id)))
        follows = list(s.scalars(select(m.SubscriberTopic.topic_id)
                                 .where(m.SubscriberTopic.subscriber_id == bob.id)))
        ann = s.get(m.Subscriber, sid)
        assert ann is not None and ann.status == "paused"
        ann_rules = list(s.scalars(select(m.Rule.query).where(m.Rule.subscriber_id == sid)))
    assert (bob.timezone, rules, follows) == ("Asia/Tokyo", ["-survey llm", "agent*"], [7])
    assert ann_rules == []  # a rules cell is the whole list: an empty one clears it


def test_topics_with_counts_and_bulk_rules(factory: Any) -> None:
    """A topic is validated, listed with its follower count and its matches of the last week;
    one rule is applied to listed subscribers once (a second time skips them)."""
    a = add_subscriber(factory, "a@example.org")
    b = add_subscriber(factory, "b@example.org")
    env = _admin(factory)
    bad = env.post_form("/admin/topics/new", "/admin/topics", {"name": "X", "query": "NOT x"})
    assert bad.status_code == 400 and "positive term" in bad.text
    env.post_form("/admin/topics/new", "/admin/topics", {
        "name": "Diffusion", "query": "diffus*", "public": "1", "enabled": "1"})
    papers = real_papers()
    seed_papers(factory, papers[:3], datetime.now(UTC))
    with transaction(factory) as s:
        tid = s.scalars(select(m.Topic.id)).one()
        s.add(m.SubscriberTopic(subscriber_id=a, topic_id=tid))
        s.add(m.Match(subscriber_id=a, paper_id=papers[2].id, topic_id=tid))
        s.add(m.Match(subscriber_id=a, paper_id=papers[1].id, topic_id=tid,
                      matched_at=datetime.now(UTC) - timedelta(days=9)))
    page = env.client.get("/admin/topics").text
    assert '<td class="num">1</td><td class="num">1</td>' in page
    emails = "a@example.org\nb@example.org\n"
    form = {"query": "graph", "emails": emails}
    r = env.post_form("/admin/rules/bulk", "/admin/rules/bulk", form)
    assert "Added to 2 subscriber(s)" in r.text
    form = {"query": "graph", "emails": emails}
    r = env.post_form("/admin/rules/bulk", "/admin/rules/bulk", form)
    assert "Added to 0 subscriber(s); 2 already had it" in r.text
    assert _count(factory, m.Rule, m.Rule.subscriber_id.in_([a, b])) == 2


def test_sources_add_disable_and_scrape_now(factory: Any, static_server: str) -> None:
    """A source added in the admin is scraped on "scrape now" with the real fetcher from a real
    local HTTP server: the fixture's nine papers are stored and its health shows."""
    env = _admin(factory, allow_private_urls=True)
    url = f"{static_server}/hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"
    bad = env.post_form("/admin/sources/new", "/admin/sources", {
        "name": "hf", "kind": "hf-api", "url": url, "every": "soon"})
    assert bad.status_code == 400
    r = env.post_form("/admin/sources/new", "/admin/sources", {
        "name": "hf", "kind": "hf-api", "url": url, "every": "1h", "enabled": "1"},
        follow_redirects=False)
    src = r.headers["location"].split("?")[0]
    r = env.post_form(src, src + "/scrape", {})
    assert r.status_code == 200
    assert _count(factory, m.Paper, m.Paper.id != "") == len(real_papers())
    listing = env.client.get("/admin/sources").text
    assert '<span class="badge ok">ok</span>' in listing and '<td class="num">9</td>' in listing
    env.post_form("/admin/sources", src + "/disable", {})
    with factory() as s:
        assert s.scalars(select(m.Source.enabled)).one() is False


def test_deliveries_filter_preview_resend_and_dashboard(factory: Any) -> None:
    """The log filters by status; a failed digest shows its papers and message preview; resend
    makes a new queued delivery carrying the same papers; the dashboard counts the last day."""
    sid = add_subscriber(factory, "r@example.org", rules=("diffusion",))
    papers = real_papers()
    seed_papers(factory, papers, datetime.now(UTC))
    with transaction(factory) as s:
        rid = s.scalars(select(m.Rule.id)).one()
        failed = m.Delivery(subscriber_id=sid, kind="digest", period_key="2024-03-12",
                            status="failed", last_error="550 5.1.1 no such user")
        s.add_all([failed, m.Delivery(subscriber_id=sid, kind="digest", period_key="2024-03-11",
                                      status="sent", sent_at=datetime.now(UTC))])
        s.flush()
        for p in papers[2:4]:
            s.add(m.Match(subscriber_id=sid, paper_id=p.id, delivery_id=failed.id, rule_id=rid,
                          explanation={"rules": [{"rule_id": rid, "topic_id": None,
                                                  "name": "Diff", "query": "diffusion",
                                                  "terms": [], "hits": []}]}))
        fid = failed.id
    env = _admin(factory)
    listing = env.client.get("/admin/deliveries?status=failed").text
    assert "2024-03-12" in listing and "2024-03-11" not in listing
    page = env.client.get(f"/admin/deliveries/{fid}").text
    assert papers[2].title in page and "Resend" in page
    message = env.client.get(f"/admin/deliveries/{fid}/message")
    assert papers[2].title.split(":")[0] in message.text
    r = env.post_form(f"/admin/deliveries/{fid}", f"/admin/deliveries/{fid}/resend", {},
                      follow_redirects=False)
    new_id = int(r.headers["location"].split("/")[-1].split("?")[0])
    with factory() as s:
        new = s.get_one(m.Delivery, new_id)
        assert (new.status, new.resend_of, new.period_key) == ("queued", fid, f"2024-03-12~r{fid}")
        moved = set(s.scalars(select(m.Match.paper_id).where(m.Match.delivery_id == new_id)))
    assert moved == {p.id for p in papers[2:4]}
    again = env.post_form(f"/admin/deliveries/{fid}", f"/admin/deliveries/{fid}/resend", {})
    assert again.status_code == 409
    dash = env.client.get("/admin").text
    for name, n in [("queued", 1), ("sent", 1), ("failed", 1)]:
        assert f'data-count="{name}"><b>{n}</b>' in dash
