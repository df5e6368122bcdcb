"""What an operator meets at the command line: help, errors that say what to do, and the
commands a support request needs (change a schedule, send one digest now, remove a source).
Each test runs the real console entry (`python -m paperalerts`) against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import fixture_file

DAY = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"
FEED = "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-04.xml"


def run(
    db_url: str, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    e = {
        **os.environ,
        "PAPERALERTS_DATABASE_URL": db_url,
        "PAPERALERTS_SECRET_KEY": "k" * 32,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "paperalerts", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
        input=stdin if stdin is not None else "",
    )


def _with_matches(db: str, sink_url: str) -> None:
    """Two confirmed daily subscribers whose rules matched papers that wait for their digest."""
    assert run(db, "init", "--no-defaults").returncode == 0
    run(db, "sources", "add", "hf", "hf-api", "https://e.org/api", "--no-check", "--backfill")
    for who in ("ann", "bob"):
        run(db, "subscribers", "add", f"{who}@example.org", "--confirmed", "--hour", "8")
        assert run(db, "rules", "add", f"{who}@example.org", "diffusion").returncode == 0
    assert run(db, "scrape", "hf", "--file", str(fixture_file(DAY))).returncode == 0
    assert run(db, "sources", "disable", "hf").returncode == 0
    r = run(db, "tick", PAPERALERTS_SMTP_URL=sink_url)  # matches; nobody is due at this hour
    assert r.returncode == 0, r.stderr


def _pin_schedules(db: str, hours_ahead: int) -> None:
    """Move every daily digest `hours_ahead` into the future, whatever the clock says now."""
    at = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=hours_ahead)
    engine = create_engine(db)
    with engine.begin() as c:
        c.execute(text("UPDATE subscriber SET next_digest_at = :t"), {"t": at})
    engine.dispose()


def test_dry_run_with_nobody_due_names_who_is_next_and_when(sqlite_url: str, sink: object) -> None:
    """`digests send --dry-run` when nobody is due prints no due lines on stdout (the script
    contract) and says on stderr who is due next, when, and how many papers wait."""
    _with_matches(sqlite_url, sink.url)  # type: ignore[attr-defined]
    _pin_schedules(sqlite_url, 5)
    r = run(sqlite_url, "digests", "send", "--dry-run")
    assert r.returncode == 0 and r.stdout == ""
    assert "nobody is due now; next: ann@example.org (daily) at" in r.stderr
    assert "(in 4 h 59 min)" in r.stderr or "(in 5 h 0 min)" in r.stderr
    assert "papers waiting for them" in r.stderr and " 0 papers" not in r.stderr


def test_digests_send_to_sends_one_subscribers_waiting_papers_now(
    sqlite_url: str, sink: object
) -> None:
    """`digests send --to EMAIL` sends that subscriber's waiting papers at once, as one real
    message, and nobody else's; asked again, it says nothing is waiting and sends nothing."""
    url = sink.url  # type: ignore[attr-defined]
    _with_matches(sqlite_url, url)
    _pin_schedules(sqlite_url, 5)
    r = run(sqlite_url, "digests", "send", "--to", "ANN@example.org", PAPERALERTS_SMTP_URL=url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "1 dispatched, 1 sent, 0 retry, 0 failed"
    got = [m.rcpt_tos for m in sink.messages]  # type: ignore[attr-defined]
    assert got == [("ann@example.org",)]
    body = sink.messages[0].message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    assert "Diffusion" in body
    r = run(sqlite_url, "digests", "send", "--to", "ann@example.org", PAPERALERTS_SMTP_URL=url)
    assert "nothing waiting for ann@example.org" in r.stderr
    assert len(sink.messages) == 1  # type: ignore[attr-defined]
    r = run(sqlite_url, "digests", "send", "--dry-run", "--to", "bob@example.org")
    assert r.stdout.startswith("bob@example.org\tdaily\t") and "0 papers" not in r.stdout


def test_subscribers_set_changes_only_what_is_given_and_says_when_next(sqlite_url: str) -> None:
    """`subscribers set` changes the given schedule fields, keeps the rest, audits the change and
    prints the next digest time in the subscriber's zone; bad values are refused clearly."""
    run(sqlite_url, "init", "--no-defaults")
    run(sqlite_url, "subscribers", "add", "ann@example.org", "--confirmed")
    r = run(sqlite_url, "subscribers", "set", "ann@example.org", "--frequency", "weekly",
            "--weekday", "tue", "--timezone", "Europe/Berlin")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("updated ann@example.org: active, weekly on Tuesday at 08:00 "
                               "Europe/Berlin; next digest Tue ")
    assert r.stdout.rstrip().endswith("08:00 Europe/Berlin")
    listed = run(sqlite_url, "subscribers", "list").stdout
    assert listed == "ann@example.org\tactive\tweekly\tEurope/Berlin\t0 rules\n"
    r = run(sqlite_url, "subscribers", "set", "ann@example.org", "--pause")
    assert r.stdout.startswith("updated ann@example.org: paused, weekly on Tuesday")
    r = run(sqlite_url, "subscribers", "set", "ann@example.org", "--timezone", "Mars/Olympus")
    assert r.returncode == 1 and "Mars/Olympus" in r.stderr
    r = run(sqlite_url, "subscribers", "set", "nobody@example.org", "--hour", "9")
    assert r.returncode == 1 and "no subscriber nobody@example.org" in r.stderr


def test_sources_remove_forgets_the_source_and_keeps_its_papers(sqlite_url: str) -> None:
    """`sources remove` asks for --yes when not at a terminal; with it, the source and its
    snapshots go, its papers stay, and a source of the same name can be added again."""
    run(sqlite_url, "init", "--no-defaults")
    run(sqlite_url, "sources", "add", "hf", "hf-api", "https://e.org/api", "--no-check")
    assert run(sqlite_url, "scrape", "hf", "--file", str(fixture_file(DAY))).returncode == 0
    r = run(sqlite_url, "sources", "remove", "hf")
    assert r.returncode == 1 and "--yes" in r.stderr
    r = run(sqlite_url, "sources", "remove", "hf", "--yes")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("removed source hf (1 snapshots, 9 listed papers forgotten")
    assert run(sqlite_url, "sources", "list").stdout.splitlines()[1:] == []
    engine = create_engine(sqlite_url)
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM paper")).scalar() == 9
        assert c.execute(text("SELECT count(*) FROM snapshot")).scalar() == 0
    engine.dispose()
    r = run(sqlite_url, "sources", "add", "hf", "hf-api", "https://e.org/api", "--no-check")
    assert r.returncode == 0
    assert run(sqlite_url, "sources", "remove", "nope", "--yes").returncode == 1


def test_sources_add_fetches_and_parses_before_adding(sqlite_url: str, static_server: str) -> None:
    """`sources add` fetches the URL once: a local URL the SSRF guard refuses names the setting
    that allows it; a page of another kind names the kind it is; a good one is added with its
    entry count. Nothing is stored on a failed check."""
    run(sqlite_url, "init", "--no-defaults")
    url = f"{static_server}/{FEED}"
    r = run(sqlite_url, "sources", "add", "hb", "feed", url)
    assert r.returncode == 1
    assert "non-public address" in r.stderr and "PAPERALERTS_ALLOW_PRIVATE_URLS=true" in r.stderr
    allow = {"PAPERALERTS_ALLOW_PRIVATE_URLS": "true"}
    r = run(sqlite_url, "sources", "add", "hb", "hf-api", url, **allow)
    assert r.returncode == 1
    assert f"{url} is not a hf-api page" in r.stderr and "it parses as feed" in r.stderr
    assert run(sqlite_url, "sources", "list").stdout.splitlines()[1:] == []
    r = run(sqlite_url, "sources", "add", "hb", "feed", url, **allow)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"checked {url}: 27 entries parse as feed",
        "added source hb (feed, every 30m)",
    ]


def test_an_interval_without_a_unit_is_refused_with_the_likely_meanings(sqlite_url: str) -> None:
    """`--every 5` is ambiguous (minutes? hours?): refused, suggesting 5m and 5h."""
    run(sqlite_url, "init", "--no-defaults")
    r = run(sqlite_url, "sources", "add", "x", "feed", "https://e.org/f", "--every", "5",
            "--no-check")
    assert r.returncode == 1
    assert "interval '5' has no unit: write e.g. 5m or 5h" in r.stderr


def test_a_failed_scrape_is_reported_once(sqlite_url: str) -> None:
    """A scrape refused by the SSRF guard prints its reason exactly once (not again as a log)."""
    run(sqlite_url, "init", "--no-defaults")
    run(sqlite_url, "sources", "add", "bad", "feed", "http://127.0.0.1:9/f.xml", "--no-check")
    r = run(sqlite_url, "scrape")
    assert r.returncode == 1
    both = r.stdout + r.stderr
    assert both.count("non-public address 127.0.0.1") == 1, both


def test_help_lists_getting_started_first_and_shows_no_bool_type() -> None:
    """Top-level help puts run/demo/init before the plumbing (parse, match); flags carry no
    `<bool>` type column."""
    r = run("sqlite://", "--help", COLUMNS="120")
    names = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("│ ") and
             len(ln.split()) > 2 and ln.split()[1].isalpha()]
    assert names.index("run") < names.index("demo") < names.index("init") < names.index("parse")
    assert names.index("subscribers") < names.index("match")
    for args in (["--help"], ["digests", "send", "--help"], ["sources", "add", "--help"]):
        assert "<bool>" not in run("sqlite://", *args).stdout


def test_lowercase_and_or_are_refused_with_the_fix() -> None:
    """'diffusion and video' is refused (exit 2, as on every other surface) with the rule as
    probably meant and the way to search the word; uppercase operators and quoted phrases
    pass."""
    r = run("sqlite://", "rules", "check", "diffusion and video")
    assert r.returncode == 2 and r.stdout == ""
    assert "error: 'and' would be searched as a word; write AND" in r.stderr
    assert '"and" in quotes to search for the word' in r.stderr
    assert "did you mean: diffusion AND video" in r.stderr
    quiet = run("sqlite://", "rules", "check", 'diffusion AND "rock and roll"')
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_comparison_without_colon_is_an_error_with_the_fix() -> None:
    """'upvotes>=20' would be words no paper has: refused at its position, suggesting the colon."""
    r = run("sqlite://", "rules", "check", "diffusion upvotes>=20")
    assert r.returncode == 2
    assert "'upvotes>=20' is not a comparison at 10 — did you mean 'upvotes:>=20'?" in r.stderr
    assert run("sqlite://", "rules", "check", "upvotes:>=20").returncode == 0


def test_match_on_a_file_that_is_not_json_lines_says_so(tmp_path: Path) -> None:
    """`match` given a file that is not papers as JSON lines names the file and line and what
    was expected (no Python exception names)."""
    rules = tmp_path / "rules.txt"
    rules.write_text("diffusion\n")
    for content, said in (("[1, 2]\n", "got an array"), ("title: x\n", "Expecting value")):
        papers = tmp_path / "papers.jsonl"
        papers.write_text(content)
        r = run("sqlite://", "match", str(rules), str(papers))
        assert r.returncode == 2
        assert f"{papers}, line 1: not a paper as JSON lines" in r.stderr and said in r.stderr
        assert "AttributeError" not in r.stderr and "Traceback" not in r.stderr


def test_admin_create_reads_a_piped_password(sqlite_url: str) -> None:
    """Without a terminal, `admin create` reads the password from standard input (no prompt
    warning, no "Aborted."); an empty one is refused with what to do."""
    run(sqlite_url, "init", "--no-defaults")
    env = {k: v for k, v in os.environ.items() if k != "PAPERALERTS_ADMIN_PASSWORD"}
    r = subprocess.run([sys.executable, "-m", "paperalerts", "admin", "create", "ops"],
                       input="a-long-enough-password\n", capture_output=True, text=True,
                       env={**env, "PAPERALERTS_DATABASE_URL": sqlite_url}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "created admin ops" and "Aborted" not in r.stderr + r.stdout
    r = subprocess.run([sys.executable, "-m", "paperalerts", "admin", "create", "ops2"],
                       input="", capture_output=True, text=True,
                       env={**env, "PAPERALERTS_DATABASE_URL": sqlite_url}, timeout=60)
    assert r.returncode == 1 and "no password on standard input" in r.stderr


def test_support_links_use_the_address_the_web_listens_on(sqlite_url: str) -> None:
    """With no PAPERALERTS_BASE_URL, `subscribers links` points at http://127.0.0.1:8000, where
    `paperalerts web` listens by default and what emails link to."""
    run(sqlite_url, "init", "--no-defaults")
    run(sqlite_url, "subscribers", "add", "ann@example.org", "--confirmed")
    env = {k: v for k, v in os.environ.items() if k != "PAPERALERTS_BASE_URL"}
    r = subprocess.run([sys.executable, "-m", "paperalerts", "subscribers", "links",
                        "ann@example.org"], capture_output=True, text=True, timeout=60,
                       env={**env, "PAPERALERTS_DATABASE_URL": sqlite_url})
    assert r.returncode == 0, r.stderr
    assert all(ln.split("\t")[1].startswith("http://127.0.0.1:8000/")
               for ln in r.stdout.splitlines())


@pytest.mark.slow
def test_piped_demo_output_keeps_whole_lines(tmp_path: Path) -> None:
    """Piped (not a terminal), the demo's lines and table are not cut at 80 columns."""
    r = subprocess.run([sys.executable, "-m", "paperalerts", "demo", "--dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": ""})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(ln) for ln in lines) > 80
    assert not any(ln.rstrip().endswith("…") for ln in lines)
