"""`paperalerts demo`: the whole mission offline on the project's own invented pages; the
summary's values, the received email and the shipped pages are pinned."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import select

from paperalerts.core import sources
from paperalerts.edges.db import make_engine, session_factory
from paperalerts.edges.db import models as m
from paperalerts.faces.demo import pages
from paperalerts.faces.demo.catalog import (
    API_DAYS,
    BY_ID,
    EXPECTED_MATCHES,
    FEED_DAYS,
    PAPERS,
    SUBSCRIBERS,
    TOPICS,
)
from paperalerts.faces.demo.run import Demo


def test_shipped_pages_are_what_the_catalog_makes() -> None:
    """The pages in the package are exactly what `pages.build()` makes from the catalog, so the
    catalog and the files served by the demo cannot drift apart."""
    for name, body in pages.build().items():
        assert pages.shipped(name) == body, f"{name}: run python -m paperalerts.faces.demo.pages"


def test_shipped_pages_parse_with_the_real_parsers() -> None:
    """Each page parses with its source kind's parser into the catalog's papers, in page order,
    with titles, authors and day 2's raised upvotes."""
    for day in (1, 2):
        api = sources.parse("hf-api", pages.shipped(pages.API_FILE.format(day)), "demo")
        assert [p.id for p in api] == list(API_DAYS[day - 1])
        feed = sources.parse("feed", pages.shipped(pages.FEED_FILE.format(day)), "demo")
        assert [p.id for p in feed] == list(FEED_DAYS[day - 1])
        for p in api + feed:
            assert p.title == BY_ID[p.id].title
            assert p.authors == BY_ID[p.id].authors
    day2 = {p.id: p for p in sources.parse("hf-api", pages.shipped("daily_papers_day2.json"), "x")}
    assert day2["2611.99003"].upvotes == 45 and BY_ID["2611.99003"].upvotes == 20


def test_demo_runs_the_mission_and_reports_it(tmp_path: Path) -> None:
    """Day 1 is the baseline (no alerts); day 2 brings 7 new papers (6 on the API, 1 only on the
    feed) and 2 updates (a paper listed again with more upvotes; a paper seen on a second
    source); each subscriber gets exactly their expected papers in one email, the one whose rules
    match nothing gets none, and one received email is saved as .eml and .html."""
    console = Console(quiet=True)
    began = time.monotonic()
    with Demo(tmp_path / "demo", console) as demo:
        summary = demo.run()
        received = list(demo.sink.messages)
    assert time.monotonic() - began < 60

    day1 = set(API_DAYS[0]) | set(FEED_DAYS[0])
    day2 = set(API_DAYS[1]) | set(FEED_DAYS[1])
    assert summary.papers_seen == len(day1 | day2) == len(PAPERS)
    assert summary.entries_fetched == sum(len(d) for d in API_DAYS + FEED_DAYS)
    assert summary.new_papers == len(day2 - day1) == 7
    assert summary.updated_papers == 2
    by_email = {r.email: r for r in summary.subscribers}
    assert set(by_email) == {s.email for s in SUBSCRIBERS}
    for addr, want in EXPECTED_MATCHES.items():
        assert by_email[addr].papers == tuple(sorted(want)), addr
        assert by_email[addr].emails == (1 if want else 0), addr
    assert by_email["grace@example.org"].rules == 2
    assert summary.emails_sent == 3 == len(received)
    engine = make_engine(f"sqlite:///{tmp_path / 'demo' / 'demo.db'}")
    with session_factory(engine)() as s:  # sign-up offers the demo's public topics
        assert {t.name for t in s.scalars(select(m.Topic).where(m.Topic.public.is_(True)))} == {
            name for name, _, _ in TOPICS
        }
    engine.dispose()

    # Each email carries exactly its subscriber's papers (read from the arXiv links).
    for r in received:
        msg = r.message
        text = msg.get_body(("plain",))
        assert text is not None
        body = text.get_content()
        linked = {pid for pid in BY_ID if f"arxiv.org/abs/{pid}" in body}
        assert linked == set(EXPECTED_MATCHES[r.rcpt_tos[0]])
        # 2611.99014 came only through the RSS feed: no Hugging Face page to link to.
        assert "huggingface.co/papers/2611.99014" not in body
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    assert summary.eml_path is not None and summary.html_path is not None
    saved = email.message_from_bytes(summary.eml_path.read_bytes(), policy=email.policy.default)
    assert saved["To"] == received[0].rcpt_tos[0]
    html = summary.html_path.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    for pid in EXPECTED_MATCHES[received[0].rcpt_tos[0]]:
        assert f"https://huggingface.co/papers/{pid}" in html


def test_demo_command_prints_the_summary_table(tmp_path: Path) -> None:
    """`paperalerts demo --dir D` works from a clean environment, prints the totals, one row per
    subscriber and the saved email's paths, and refuses to reuse a directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
    env["COLUMNS"] = "200"
    target = tmp_path / "d"
    done = subprocess.run(
        [sys.executable, "-m", "paperalerts", "demo", "--dir", str(target)],
        env=env, cwd=tmp_path, capture_output=True, timeout=120, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "papers seen 14" in out and "new on day 2 7" in out and "emails sent 3" in out
    for addr, want in EXPECTED_MATCHES.items():
        row = next(line for line in out.splitlines() if addr in line)
        assert (" ".join(sorted(want)) if want else "│ -") in row
    assert str(target / "mail" / "ada_at_example.org.eml") in out
    assert (target / "mail" / "ada_at_example.org.html").exists()
    again = subprocess.run(
        [sys.executable, "-m", "paperalerts", "demo", "--dir", str(target)],
        env=env, cwd=tmp_path, capture_output=True, timeout=120, text=True,
    )  # fmt: skip
    assert again.returncode == 1 and "holds a demo already" in again.stderr


def test_demo_leaves_the_environment_alone(tmp_path: Path) -> None:
    """The demo allows private URLs through its own Settings object, never the environment."""
    before = dict(os.environ)
    console = Console(quiet=True)
    with Demo(tmp_path / "e", console) as demo:
        demo.run()
        assert demo.settings is not None and demo.settings.allow_private_urls
    assert dict(os.environ) == before


def test_demo_serve_keeps_the_admin_running_with_the_printed_login(tmp_path: Path) -> None:
    """`demo --serve` prints the admin's URL and a random login that works, the admin shows the
    demo's subscribers, and Ctrl-C stops it."""
    import re
    import signal

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "paperalerts", "demo", "--serve", "--dir", str(tmp_path / "d")],
        env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"admin:\s+(\S+)/admin\s+login: admin / (\S+)",
                                      log.read_text())):  # fmt: skip
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        url, password = found.groups()
        with httpx.Client(base_url=url, timeout=10) as client:
            while time.monotonic() < deadline:
                try:
                    form = client.get("/admin/login")
                    break
                except httpx.ConnectError:
                    time.sleep(0.2)
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token
            client.post(
                "/admin/login",
                data={"csrf_token": token.group(1), "username": "admin", "password": password},
            )
            page = client.get("/admin/subscribers")
        assert page.status_code == 200
        assert all(s.email in page.text for s in SUBSCRIBERS)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
