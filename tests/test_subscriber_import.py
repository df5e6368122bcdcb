"""``paperalerts subscribers import/export`` on SQLite and PostgreSQL, through the real command:
every kind of bad row reported with its line (dry run writes nothing), bad files refused as a
whole, re-import by email idempotent, rules and topics round-tripping, and suppression kept (an
unsubscribed, bounced or complained address is exported and imported as such and never
reactivated by an import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from paperalerts.core.subscriber_rows import AddressCheck
from paperalerts.core.subscribers import normalize_email
from paperalerts.edges.config import get_settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.cli import app

runner = CliRunner()
HEADER = "email,name,status,frequency,send_hour,weekday,timezone,topics,rules\n"


@pytest.fixture
def cli_db(db: sessionmaker[Session], database_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    """The migrated database `db`, configured for the in-process CLI, with one topic."""
    monkeypatch.setenv("PAPERALERTS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    with transaction(db) as s:
        s.add(m.Topic(name="Agents", query="agent*", normalized="agent*"))
    yield db
    get_settings.cache_clear()


def cli(*args: str, input: bytes | None = None) -> Any:
    return runner.invoke(app, ["subscribers", *args], input=input)


def _subs(factory: sessionmaker[Session]) -> dict[str, tuple[Any, ...]]:
    with factory() as s:
        return {r[0]: tuple(r[1:]) for r in s.execute(select(
            m.Subscriber.email, m.Subscriber.status, m.Subscriber.name, m.Subscriber.frequency,
            m.Subscriber.send_hour, m.Subscriber.weekday, m.Subscriber.timezone))}


def _count(factory: sessionmaker[Session], model: Any) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_dry_run_reports_every_problem_of_every_row_with_its_line(
    cli_db: sessionmaker[Session], tmp_path: Path
) -> None:
    """One bad row per kind of mistake (address, status, frequency, hour, weekday, timezone,
    rule, unknown topic, an address repeated in the file, a stray cell): each problem is
    printed with its line, the good rows are counted, and nothing is written."""
    f = tmp_path / "people.csv"
    f.write_text(HEADER + "\n".join([
        "ok@example.org,Ok,active,daily,8,0,UTC,Agents,diffusion",     # 2
        "not-an-address,,active,,,,,,",                                 # 3
        "st@example.org,,vip,,,,,,",                                    # 4
        "fr@example.org,,,hourly,,,,,",                                 # 5
        "hr@example.org,,,,24,,,,",                                     # 6
        "wd@example.org,,,,,funday,,,",                                 # 7
        "tz@example.org,,,,,,Mars/Base,,",                              # 8
        "ru@example.org,,,,,,,,\"fine\ntitle:(\"",                      # 9-10
        "to@example.org,,,,,,,Cooking,",                                # 11
        "OK@example.org,,,,,,,,",                                       # 12
        "cells@example.org,,,,,,,,,extra",                              # 13
        "all@,,vip,hourly,99,x,Nowhere,,AND",                           # 14
    ]) + "\n")
    r = cli("import", str(f), "--dry-run")
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    expect = {
        3: "email: not-an-address is not a valid email address",
        4: "status: unknown status 'vip'",
        5: "frequency: frequency must be one of instant, daily, weekly, got 'hourly'",
        6: "send_hour: hour must be from 0 to 23, got 24",
        7: "weekday: invalid weekday 'funday'",
        8: "timezone: unknown timezone 'Mars/Base'",
        9: "rules: rule 2 ('title:('): unbalanced parenthesis",
        11: "topics: no topic named 'Cooking'",
        12: "email: the address is on line 2 already",
        13: "10 cells but the header names 9 columns",
    }
    for line, text in expect.items():
        assert any(ln.startswith(f"line {line} ") and text in ln for ln in lines), (line, lines)
    row14 = [ln.split(": ")[1] for ln in lines if ln.startswith("line 14 ")]
    assert row14 == ["email", "status", "frequency", "send_hour", "weekday", "timezone", "rules"]
    assert lines[-1] == ("dry run, nothing written: would create 1, update 0, leave 0 unchanged, "
                         "keep 0 suppressed; 11 row(s) skipped with problems (12 read)")
    assert _count(cli_db, m.Subscriber) == 0 and _count(cli_db, m.AuditLog) == 0
    r = cli("import", str(f))
    assert r.exit_code == 1 and "imported: created 1" in r.stdout
    assert list(_subs(cli_db)) == ["ok@example.org"]


@pytest.mark.parametrize(("data", "message"), [
    (HEADER.replace("rules", "rules,shoe_size").encode() + b"a@example.org,,,,,,,,,44\n",
     "line 1: unknown column(s) 'shoe_size'"),
    (b"name,status\nAnn,active\n", "line 1: the header must name an 'email' column"),
    ("email,name\nann@example.org,Ann\nj\xf6rg@example.org,J\n".encode("latin-1"),
     "line 3: not UTF-8: byte 0xf6"),
    ("email,name\nann@example.org,Ann\n".encode("utf-16"), "line 1: the file is UTF-16"),
])
def test_a_bad_file_is_refused_as_a_whole(
    cli_db: sessionmaker[Session], tmp_path: Path, data: bytes, message: str
) -> None:
    """An unknown column, no email column, a non-UTF-8 line or a UTF-16 file: refused, with
    the line, and not one row written (even the good ones before the bad line)."""
    f = tmp_path / "people.csv"
    f.write_bytes(data)
    r = cli("import", str(f))
    assert r.exit_code == 1 and message in r.stdout, r.output
    assert "refused: nothing was written" in r.stdout
    assert _count(cli_db, m.Subscriber) == 0


def test_a_utf8_bom_is_read_as_utf8(cli_db: sessionmaker[Session], tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark: the header still reads 'email'."""
    f = tmp_path / "people.csv"
    f.write_bytes("\ufeffemail,name\njoerg@example.org,J\u00f6rg\n".encode())
    r = cli("import", str(f))
    assert r.exit_code == 0, r.output
    assert _subs(cli_db)["joerg@example.org"][1] == "J\u00f6rg"


def test_reimport_updates_by_email_and_twice_changes_nothing(
    cli_db: sessionmaker[Session], tmp_path: Path
) -> None:
    """Importing a file creates; importing it again changes nothing (no new audit rows, same
    export); a changed cell updates that subscriber by email, a rules cell replaces the list."""
    f = tmp_path / "people.csv"
    f.write_text(HEADER + "ann@example.org,Ann,active,weekly,9,fri,Europe/Berlin,Agents,"
                 "\"diffusion\ngraph\"\nbob@example.org,,paused,,,,,,\n")
    assert cli("import", str(f)).exit_code == 0
    first = cli("export").stdout
    audits = _count(cli_db, m.AuditLog)
    again = cli("import", str(f))
    assert again.exit_code == 0 and "created 0, updated 0, unchanged 2" in again.stdout
    assert cli("export").stdout == first and _count(cli_db, m.AuditLog) == audits + 1
    f.write_text(HEADER + "ANN@example.org,,,,,,Asia/Tokyo,,\"graph\nllm\"\n")
    r = cli("import", str(f))
    assert "created 0, updated 1" in r.stdout
    assert _subs(cli_db)["ann@example.org"] == ("active", "Ann", "weekly", 9, 4, "Asia/Tokyo")
    with cli_db() as s:
        rules = list(s.scalars(select(m.Rule.query).order_by(m.Rule.id)))
        follows = _count(cli_db, m.SubscriberTopic)
        nxt = s.scalar(select(m.Subscriber.next_digest_at)
                       .where(m.Subscriber.email == "ann@example.org"))
    assert rules == ["graph", "llm"] and follows == 0
    assert nxt is not None and nxt.minute == 0  # recomputed for the new zone


def test_suppression_survives_export_and_import(
    cli_db: sessionmaker[Session], tmp_path: Path, database_url: str
) -> None:
    """Unsubscribed, bounced and complained addresses are exported with their status, imported
    back as suppressed into an empty database, and an import saying 'active' for them keeps them
    suppressed (counted, never reactivated); a live address is suppressed by such a row."""
    f = tmp_path / "in.jsonl"
    rows = [
        {"email": "gone@example.org", "status": "unsubscribed", "rules": ["llm"]},
        {"email": "bounce@example.org", "status": "bounced", "topics": ["Agents"]},
        {"email": "spam@example.org", "status": "complained"},
        {"email": "live@example.org", "status": "active", "send_hour": 7},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("import", str(f)).exit_code == 0
    out = tmp_path / "out.csv"
    assert cli("export", "-o", str(out)).exit_code == 0
    exported = out.read_text()
    with transaction(cli_db) as s:  # an empty database again, topics kept
        for model in (m.Rule, m.SubscriberTopic, m.Subscriber):
            s.execute(model.__table__.delete())  # type: ignore[attr-defined]
    assert cli("import", str(out)).exit_code == 0
    assert cli("export", "--format", "csv").stdout == exported
    statuses = {e: v[0] for e, v in _subs(cli_db).items()}
    assert statuses == {"gone@example.org": "unsubscribed", "bounce@example.org": "bounced",
                        "spam@example.org": "bounced", "live@example.org": "active"}
    revive = HEADER + "".join(f"{e},,active,,,,,,\n" for e in statuses)
    r = cli("import", "-", "--format", "csv", input=(revive + "").encode())
    assert r.exit_code == 0 and "kept suppressed 3" in r.stdout, r.output
    assert {e: v[0] for e, v in _subs(cli_db).items()} == statuses
    r = cli("import", "-", input=b"email,status\nlive@example.org,unsubscribed\n")
    assert _subs(cli_db)["live@example.org"][0] == "unsubscribed"
    with cli_db() as s:
        assert s.scalar(select(m.Subscriber.unsubscribed_at)
                        .where(m.Subscriber.email == "live@example.org")) is not None


def test_jsonl_round_trips_rules_topics_and_schedule(
    cli_db: sessionmaker[Session], tmp_path: Path
) -> None:
    """Export as JSON Lines (format from the extension) and import it back: the same
    subscribers, rules in order, topics by name; a bad rule in a JSON list is a row problem."""
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "ann@example.org,Ann,active,instant,,,,Agents,\"b OR c\na\"\n"
                   "'=cmd@example.org,,paused,daily,23,6,Pacific/Auckland,,\n")
    assert cli("import", str(src)).exit_code == 0
    assert "'=cmd@example.org" in cli("export").stdout  # defused for spreadsheets...
    out = tmp_path / "people.jsonl"
    assert cli("export", "--output", str(out)).exit_code == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == [
        {"email": "=cmd@example.org", "name": "", "status": "paused", "frequency": "daily",
         "send_hour": 23, "weekday": 6, "timezone": "Pacific/Auckland", "topics": [],
         "rules": []},  # ... and read back as the address it is
        {"email": "ann@example.org", "name": "Ann", "status": "active", "frequency": "instant",
         "send_hour": 8, "weekday": 0, "timezone": "UTC", "topics": ["Agents"],
         "rules": ["b OR c", "a"]}]
    r = cli("import", str(out))
    assert r.exit_code == 0 and "unchanged 2" in r.stdout
    got = got[1:]
    got[0]["rules"].append("title:(")
    out.write_text(json.dumps(got[0]) + "\n{not json\n[1]\n")
    r = cli("import", str(out), "--dry-run")
    assert "line 1 (ann@example.org): rules: rule 3 ('title:(')" in r.stdout
    assert "line 2: not JSON" in r.stdout and "line 3: each line must be a JSON object" in r.stdout


def test_the_console_script_imports_and_exports(tmp_path: Path, database_url: str) -> None:
    """The installed ``paperalerts`` entry point: init, import from a file, export to stdout."""
    env = {**os.environ, "PAPERALERTS_DATABASE_URL": database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "paperalerts", *args], env=env,
                              capture_output=True, text=True, timeout=180)

    assert run("init", "--no-defaults").returncode == 0
    f = tmp_path / "p.csv"
    f.write_text("email,status,rules\nann@example.org,unsubscribed,llm\n")
    r = run("subscribers", "import", str(f))
    assert r.returncode == 0 and "imported: created 1" in r.stdout, r.stderr
    r = run("subscribers", "export")
    assert r.stdout.splitlines() == [HEADER.strip(), "ann@example.org,,unsubscribed,daily,8,0,"
                                     "UTC,,llm"]


@settings(max_examples=300, deadline=None)
@example("=?utf-8?q?a?=@example.org")
@example("a..b@example.org")
@example(".a@example.org")
@example("a.@example.org")
@example("Ann+Tag@EXAMPLE.org")
@example("x" * 65 + "@example.org")
@example("\"quoted\"@example.org")
@given(st.one_of(
    st.emails(),
    st.from_regex(r"[A-Za-z0-9._+'=-]{0,70}@(example\.org|EXAMPLE\.org|b\u00fccher\.de|x|"
                  r"a\.b\.c\.d|-bad\.org|[a-z]{1,70}\.com)", fullmatch=True),
    st.text(max_size=40),
))
def test_the_remembering_address_check_equals_the_address_check(address: str) -> None:
    """`AddressCheck` (domains remembered) gives `normalize_email`'s answer for every input,
    whether its domain was accepted before (the fast path) or not."""

    def answer(check: Any, text: str) -> str | None:
        try:
            return str(check(text))
        except ValueError:
            return None

    expected = answer(normalize_email, address)
    fresh, primed = AddressCheck(), AddressCheck()
    answer(primed, "someone@" + address.rpartition("@")[2])  # remembers the domain if valid
    assert answer(fresh, address) == expected
    assert answer(primed, address) == expected


def test_the_admin_page_imports_past_the_old_row_cap_and_keeps_suppression(
    factory: sessionmaker[Session],
) -> None:
    """The admin's upload runs the same pipeline: 20,001 rows (the old import stopped at
    20,000) are all created; the admin export, suppressed addresses included, imports back with
    nothing changed and nobody reactivated."""
    from web_support import WebEnv, make_admin

    make_admin(factory)
    env = WebEnv.start(factory)
    assert env.login().status_code == 303
    n = 20_001
    body = "email,status\n" + "".join(
        f"p{i}@example.org,{'unsubscribed' if i % 3 == 0 else 'bounced' if i % 3 == 1 else ''}\n"
        for i in range(n))
    form = {"csrf_token": env.token("/admin/subscribers/import")}
    r = env.client.post("/admin/subscribers/import", data=form,
                        files={"file": ("people.csv", body.encode(), "text/csv")})
    assert r.status_code == 200 and f"imported: created {n}, updated 0" in r.text
    exported = env.client.get("/admin/subscribers/export.csv").content
    assert exported.count(b"\n") == n + 1 and b"p3@example.org,,unsubscribed," in exported
    revived = exported.replace(b",unsubscribed,", b",active,").replace(b",bounced,", b",active,")
    form = {"csrf_token": env.token("/admin/subscribers/import")}
    r = env.client.post("/admin/subscribers/import", data=form,
                        files={"file": ("people.csv", revived, "text/csv")})
    assert f"unchanged {n}, kept suppressed {n * 2 // 3}" in r.text
    with factory() as s:
        active = s.scalar(select(func.count()).select_from(m.Subscriber)
                          .where(m.Subscriber.status == "active"))
    assert active == n // 3


def test_an_address_signed_up_during_the_import_is_reported_not_taken_over(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a sign-up that creates an address between the import's read of its chunk and
    its insert (staged here by hiding the stored row from the read) keeps its subscriber as it
    is: no duplicate, none of the file's rules on it, and the row reported to import again."""
    from datetime import UTC, datetime

    from paperalerts.core.subscriber_file import Record
    from paperalerts.edges.db import make_engine, session_factory, subscriber_bulk, upgrade
    from paperalerts.pipeline.subscriber_import import import_records

    engine = make_engine(fresh_postgres_url)
    upgrade(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:
        s.add(m.Subscriber(email="race@example.org", status="pending"))
    real = subscriber_bulk.load_stored
    monkeypatch.setattr(subscriber_bulk, "load_stored", lambda s, emails: {
        k: v for k, v in real(s, emails).items() if k != "race@example.org"})
    summary = import_records(factory, [
        Record(2, {"email": "race@example.org", "status": "active", "rules": ["llm"]}),
        Record(3, {"email": "calm@example.org", "rules": ["graph"]}),
    ], now=datetime.now(UTC), actor="test")
    assert summary.created == 1
    assert [(p.line, p.email) for p in summary.problems] == [(2, "race@example.org")]
    assert "during the import" in summary.problems[0].message
    assert _subs(factory)["race@example.org"][0] == "pending"
    with factory() as s:
        assert list(s.scalars(select(m.Rule.query))) == ["graph"]
    engine.dispose()
