"""The JSON API covers what the admin can do (topics, send now, new links, scrape now, delete a
source, the health report, feedback, the audit log), its documentation is browsable offline at
/api/v1/docs, and every answer agrees with its OpenAPI document (schemathesis, all checks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from web_support import (
    LiveServer,
    WebEnv,
    add_subscriber,
    api_token,
    launch_chromium,
    real_papers,
    seed_papers,
)


def test_topics_through_the_api(db: sessionmaker[Session]) -> None:
    """Topics are created, read, edited and deleted by token; a bad rule is a 422 with its
    position, a taken name a 409; followers are counted; changes are audited as the token
    (SQLite and PostgreSQL)."""
    env = WebEnv.start(db)
    auth = api_token(env)
    c = env.client
    t = c.post("/api/v1/topics", headers=auth,
               json={"name": "Diffusion", "query": 'diffusion OR "score-based"'})
    assert t.status_code == 201, t.text
    topic = t.json()
    assert (topic["normalized"], topic["followers"]) == ('diffusion OR "score-based"', 0)
    assert c.post("/api/v1/topics", headers=auth,
                  json={"name": "Diffusion", "query": "x"}).status_code == 409
    bad = c.post("/api/v1/topics", headers=auth, json={"name": "Bad", "query": "graph AND"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["ctx"]["position"] == 6
    sub = c.post("/api/v1/subscribers", headers=auth,
                 json={"email": "f@example.org", "topics": [topic["id"]]}).json()
    assert sub["topics"] == [topic["id"]]
    assert c.get(f"/api/v1/topics/{topic['id']}", headers=auth).json()["followers"] == 1
    r = c.patch(f"/api/v1/topics/{topic['id']}", headers=auth, json={"query": "diffusion"})
    assert r.json()["normalized"] == "diffusion" and r.json()["name"] == "Diffusion"
    assert [x["name"] for x in c.get("/api/v1/topics", headers=auth).json()] == ["Diffusion"]
    assert c.delete(f"/api/v1/topics/{topic['id']}", headers=auth).status_code == 204
    assert c.get(f"/api/v1/topics/{topic['id']}", headers=auth).status_code == 404
    audit = c.get("/api/v1/audit?entity=topic", headers=auth).json()
    assert [a["action"] for a in audit] == ["delete", "update", "create"]
    assert {a["actor"] for a in audit} == {"api:script"}


def test_send_now_links_reset_status_feedback_through_the_api(
    factory: sessionmaker[Session], sink: Any
) -> None:
    """Send now mails the subscriber's waiting papers (received at a real SMTP server) and says
    what it did; an inactive subscriber is a 409; links reset is audited; the health report and
    the feedback summary are JSON."""
    env = WebEnv.start(factory, smtp_url=sink.url)
    auth = api_token(env)
    c = env.client
    papers = real_papers()
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    seed_papers(factory, papers[:2], now)
    sid = add_subscriber(factory, "now@example.org")
    with factory.begin() as s:
        s.add_all(m.Match(subscriber_id=sid, paper_id=p.id, matched_at=now, explanation={})
                  for p in papers[:2])
    r = c.post(f"/api/v1/subscribers/{sid}/send-now", headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["papers"], r.json()["status"]) == (2, "sent")
    assert [r.rcpt_tos for r in sink.messages] == [("now@example.org",)]
    again = c.post(f"/api/v1/subscribers/{sid}/send-now", headers=auth).json()
    assert (again["delivery_id"], again["papers"]) == (None, 0)
    paused = add_subscriber(factory, "paused@example.org", status="paused")
    assert c.post(f"/api/v1/subscribers/{paused}/send-now", headers=auth).status_code == 409
    assert c.post(f"/api/v1/subscribers/{sid}/links/reset", headers=auth).status_code == 204
    with factory() as s:
        actions = list(s.scalars(select(m.AuditLog.action).where(
            m.AuditLog.entity == "subscriber", m.AuditLog.entity_id == str(sid))))
    assert {"send_now"} <= set(actions) and len(actions) >= 2
    status = c.get("/api/v1/status", headers=auth).json()
    assert {"ok", "sources", "incidents", "last_24h"} <= set(status)
    assert status["last_24h"]["sent"] == 1
    fb = c.get("/api/v1/feedback", headers=auth).json()
    assert fb["recommendations_shown"] == 0 and isinstance(fb["rows"], list)


def test_scrape_now_and_delete_a_source_through_the_api(
    factory: sessionmaker[Session], static_server: str
) -> None:
    """Scrape now fetches the source (a local server over the real fixtures) and reports its
    outcome; deleting it keeps the papers."""
    env = WebEnv.start(factory, allow_private_urls=True)
    auth = api_token(env)
    c = env.client
    url = f"{static_server}/hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"
    src = c.post("/api/v1/sources", headers=auth,
                 json={"name": "hf", "kind": "hf-api", "url": url}).json()
    r = c.post(f"/api/v1/sources/{src['id']}/scrape", headers=auth)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["entry_count"], out["baseline"]) == ("ok", 9, True)
    assert c.delete(f"/api/v1/sources/{src['id']}", headers=auth).status_code == 204
    assert c.get(f"/api/v1/sources/{src['id']}", headers=auth).status_code == 404
    with factory() as s:
        assert len(list(s.scalars(select(m.Paper.id)))) == 9


def test_unknown_paths_and_methods_answer_json_with_allow(factory: sessionmaker[Session]) -> None:
    """An API path that does not exist is a JSON 404; a method a path does not have is a 405
    whose Allow lists every documented method of that path (not just the first route's), and
    PATCH /rules/validate is not taken for a rule id."""
    env = WebEnv.start(factory)
    auth = api_token(env)
    c = env.client
    r = c.get("/api/v1/no-such-thing", headers=auth)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    r = c.options("/api/v1/subscribers/1", headers=auth)
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET, HEAD, PATCH"
    r = c.patch("/api/v1/rules/validate", headers=auth, json={"query": "x"})
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    r = c.patch("/api/v1/rules/1", headers=auth, json={"enabled": 0})
    assert r.status_code == 422  # 0 is not a boolean: strict bodies


def test_api_docs_are_served_offline(factory: sessionmaker[Session]) -> None:
    """/api/v1/docs is Swagger UI from the installed package: every script and stylesheet it
    loads is ours (no CDN), under a CSP that allows no other origin; the admin links to it."""
    env = WebEnv.start(factory)
    page = env.client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    for asset in ("docs/static/swagger-ui-bundle.js", "docs/static/swagger-ui.css",
                  "docs/init.js"):
        assert asset in page.text
        assert env.client.get(f"/api/v1/{asset}").status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    api_token(env)
    env.login()
    assert 'href="/api/v1/docs"' in env.client.get("/admin").text


@pytest.mark.browser
def test_api_docs_render_every_operation_in_a_browser(factory: sessionmaker[Session]) -> None:
    """In Chromium, the docs page renders an entry for every operation of the schema, and the
    page requests nothing from any other host."""
    with LiveServer(lambda url: WebEnv.start(factory, base_url=url).app) as live:
        operations = sum(len(ops) for ops in WebEnv.start(factory).client.get(
            "/api/v1/openapi.json").json()["paths"].values())
        with launch_chromium() as browser:
            pg = browser.new_page()
            hosts: set[str] = set()
            pg.on("request", lambda req: hosts.add(req.url.split("/")[2]))
            pg.goto(f"{live.url}/api/v1/docs")
            pg.wait_for_selector(".opblock", timeout=20000)
            assert pg.locator(".opblock").count() == operations
            assert hosts == {f"127.0.0.1:{live.port}"}


@pytest.mark.slow
def test_schemathesis_cli_finds_nothing(factory: sessionmaker[Session]) -> None:
    """schemathesis, with every check (negative data, undeclared methods, Allow headers,
    undocumented status codes, response schemas) over every operation of a live server: no
    failure. The check that schema-valid data must be accepted is left out: the schema cannot
    say which addresses and rule texts are valid."""
    with LiveServer(lambda url: WebEnv.start(factory, base_url=url).app) as live:
        env = WebEnv.start(factory)
        auth = api_token(env)
        add_subscriber(factory, "seed@example.org", rules=("graph",))
        cli = Path(sys.executable).with_name("schemathesis")
        run = subprocess.run(
            [str(cli), "run", f"{live.url}/api/v1/openapi.json",
             "-H", f"Authorization: {auth['Authorization']}", "--checks", "all",
             "--exclude-checks", "positive_data_acceptance", "--max-examples", "15",
             "--seed", "7", "--no-color"],
            capture_output=True, text=True, timeout=900,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    assert run.returncode == 0, run.stdout[-6000:]
    assert "passed" in run.stdout
