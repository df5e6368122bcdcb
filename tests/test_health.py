"""Operator health: the pure verdicts, and `check_health` mailing admins through a real SMTP
server (aiosmtpd) one grouped email when incidents open and one when they recover, on SQLite and
PostgreSQL (the admin's view: test_health_dashboard.py)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from paperalerts.core.health import (
    SourceState,
    group_title,
    human_duration,
    human_time,
    incidents,
    parse_admin_emails,
    plan_alerts,
    scheduler_incident,
    source_incidents,
)
from paperalerts.core.render import render_email
from paperalerts.edges.db import health_repo
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.db.health_repo import record_heartbeat
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.step_config import health_config
from paperalerts.pipeline.health import HealthConfig, check_health
from smtp_sink import SMTPSink

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ADMINS = ("ops@example.org", "oncall@example.org")


def src(
    name: str = "hf", failures: int = 0, enabled: bool = True, worked: bool = True
) -> SourceState:
    return SourceState(name=name, kind="hf-api", url="https://example.org/x", enabled=enabled,
                       health="degraded" if failures else "ok", consecutive_failures=failures,
                       every_seconds=1800, last_error="HTTP 503" if failures else None,
                       last_run_at=T0, last_success_at=T0 - timedelta(days=1) if worked else None,
                       )  # fmt: skip


# --- pure ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "enabled", "opened"), [
    (0, True, False), (1, True, False), (2, True, True), (5, True, True), (2, False, False),
])  # fmt: skip
def test_a_source_is_an_incident_after_two_failed_intervals(
    failures: int, enabled: bool, opened: bool
) -> None:
    """An enabled source that worked before opens an incident at its second failed scrape in
    a row, not before."""
    found = source_incidents([src(failures=failures, enabled=enabled)])
    assert [i.key for i in found] == (["source:hf"] if opened else [])
    if opened:
        assert "HTTP 503" in found[0].detail and str(failures) in found[0].title


@pytest.mark.parametrize(("age", "opened"), [
    (None, False), (timedelta(0), False), (timedelta(minutes=3), False),
    (timedelta(minutes=3, seconds=1), True), (timedelta(hours=2), True),
])  # fmt: skip
def test_a_stopped_scheduler_is_an_incident_after_three_minutes(
    age: timedelta | None, opened: bool
) -> None:
    """A heartbeat older than three minutes is an incident; exactly three is not; never is not."""
    last = None if age is None else T0 - age
    assert (scheduler_incident(last, T0) is not None) == opened


def test_a_source_that_never_worked_is_failing_at_its_first_failure() -> None:
    """A source that has failed and never once succeeded is an incident at once and its verdict
    is "failing"; one never scraped is "unchecked", not "ok"."""
    never = src("new", failures=1, worked=False)
    assert never.verdict == "failing"
    found = source_incidents([never])
    assert [i.key for i in found] == ["source:new"]
    assert found[0].title == "Source new has never worked (1 failed scrape)"
    assert "Last healthy scrape: never" in found[0].detail
    fresh = SourceState("fresh", "feed", "https://x.org", True, "ok", 0, 3600)
    assert fresh.verdict == "unchecked" and source_incidents([fresh]) == []
    assert src("worked", failures=1).verdict == "degraded"


def test_incidents_list_the_scheduler_first_then_sources_by_name() -> None:
    """The stopped scheduler comes first, then failing sources sorted by name."""
    found = incidents([src("zeta", 2), src("alpha", 3), src("ok")], T0 - timedelta(minutes=9), T0)
    assert [i.key for i in found] == ["scheduler", "source:alpha", "source:zeta"]
    assert "9 minutes" in found[0].title


def test_plan_alerts_opens_new_incidents_and_recovers_gone_ones() -> None:
    """Open now and not announced -> opened; announced and no longer open -> recovered."""
    current = incidents([src("a", 2), src("b", 2)], T0, T0)
    plan = plan_alerts(current, {"source:b", "scheduler"})
    assert [i.key for i in plan.opened] == ["source:a"]
    assert plan.recovered == ("scheduler",)
    assert plan_alerts(current, {"source:a", "source:b"}).empty


def test_admin_emails_are_parsed_with_their_position_in_errors() -> None:
    """ADMIN_EMAILS: blanks dropped, duplicates (any case) removed, a bad entry named."""
    assert parse_admin_emails(" a@x.org, ,B@y.org,a@X.org ") == ("a@x.org", "B@y.org")
    assert parse_admin_emails("") == ()
    with pytest.raises(ValueError, match="entry 2 is not an email address: 'nobody'"):
        parse_admin_emails("a@x.org,nobody")


def test_times_and_groups_read_as_words() -> None:
    """Times in the reader's zone relative to today, durations in h/min, group titles in words."""
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert human_time(now - timedelta(hours=1), now, "Europe/Berlin") == "today 10:00 CET"
    assert human_time(now - timedelta(days=1), now, "Europe/Berlin") == "yesterday 11:00 CET"
    assert human_time(now - timedelta(days=3), now, "UTC") == "Fri 27 Feb 2026 10:00 UTC"
    assert human_time(None) == "never"
    assert human_duration(timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert human_duration(timedelta(days=1, hours=3)) == "1 day 3 h"
    assert group_title(["source:a"]) == "source a"
    assert group_title(["scheduler", "source:a", "source:b"]) == (
        "the scheduler and 2 sources (a, b)"
    )


def test_ops_alert_template_renders_one_line_subject_and_escapes_html() -> None:
    """The alert email: a one-line subject, a text part, HTML with scraped text escaped."""
    from paperalerts.core.render import Footer

    r = render_email("ops_alert", {
        "event": "opened", "title": "x", "noticed": "now", "admin_url": "http://h/admin",
        "items": [{"title": "Source <script>x</script> failed\nagain", "detail": "d <b>",
                   "since": ""}],
        "footer": Footer(reason="admin", postal_address=""),
    })  # fmt: skip
    assert "\n" not in r.subject and r.subject.startswith("[paperalerts] ALERT: Source")
    assert "d <b>" in r.text and "<script>" not in r.html and "&lt;script&gt;" in r.html


# --- check_health on a real database and a real SMTP server --------------------------------



def cfg(admins: tuple[str, ...] = ADMINS) -> HealthConfig:
    return HealthConfig(
        admin_emails=admins,
        mail_from="paperalerts <alerts@example.org>",
        mail_domain="example.org",
        base_url="https://alerts.example.org",
    )


def add_source(db: Any, failures: int, name: str = "hf-daily") -> None:
    """A source that worked a day before T0 and has failed `failures` times since."""
    with transaction(db) as s:
        s.add(m.Source(name=name, kind="hf-api", url="https://example.org/api",
                       consecutive_failures=failures, health="degraded" if failures else "ok",
                       last_error="HTTP 503" if failures else None,
                       last_success_at=T0 - timedelta(days=1),
                       failing_since=T0 if failures else None))  # fmt: skip


def set_failures(db: Any, n: int) -> None:
    with transaction(db) as s:
        s.execute(
            update(m.Source).values(consecutive_failures=n, health="ok" if not n else "failing")
        )


def subjects(sink: SMTPSink) -> list[tuple[str, str]]:
    return [(str(r.message["To"]), str(r.message["Subject"])) for r in sink.messages]


def test_a_failing_source_is_mailed_once_and_its_recovery_once(db: Any, sink: SMTPSink) -> None:
    """Two failed intervals -> one alert to each admin; later checks while it stays broken send
    nothing; once it scrapes again, one recovery email each; then silence."""
    add_source(db, failures=1)
    mailer = SMTPMailer(sink.url)
    try:
        assert check_health(db, mailer, cfg(), T0).mailed == 0  # one failure is not an incident
        set_failures(db, 2)
        out = check_health(db, mailer, cfg(), T0 + timedelta(minutes=30))
        assert out.opened == ("source:hf-daily",) and out.mailed == 2
        got = subjects(sink)
        assert sorted(to for to, _ in got) == sorted(ADMINS)
        assert all("ALERT: Source hf-daily has failed 2 scrapes in a row" in s for _, s in got)
        set_failures(db, 5)
        for minutes in (31, 60, 90):
            assert check_health(db, mailer, cfg(), T0 + timedelta(minutes=minutes)).mailed == 0
        assert len(sink.messages) == 2
        set_failures(db, 0)
        out = check_health(db, mailer, cfg(), T0 + timedelta(hours=2))
        assert out.recovered == ("source:hf-daily",) and out.mailed == 2
        assert all("Recovered: source hf-daily is back to normal" in s
                   for _, s in subjects(sink)[2:])  # fmt: skip
        assert check_health(db, mailer, cfg(), T0 + timedelta(hours=3)).mailed == 0
        assert len(sink.messages) == 4
        ids = [r.message["Message-ID"] for r in sink.messages]
        assert ids[0] == ids[1] != ids[2] == ids[3]  # one message per event, to every admin
    finally:
        mailer.close()


def test_a_stopped_scheduler_is_mailed_once_and_recovers_when_it_runs(
    db: Any, sink: SMTPSink
) -> None:
    """No heartbeat for more than three minutes -> one alert; the scheduler running again ->
    recovery."""
    record_heartbeat(db, T0)
    mailer = SMTPMailer(sink.url)
    try:
        assert check_health(db, mailer, cfg(("ops@example.org",)), T0 + timedelta(minutes=2)
                            ).mailed == 0  # fmt: skip
        out = check_health(db, mailer, cfg(("ops@example.org",)), T0 + timedelta(minutes=4))
        assert out.opened == ("scheduler",)
        assert "has not run for 4 minutes" in str(sink.messages[0].message["Subject"])
        assert check_health(db, mailer, cfg(("ops@example.org",)), T0 + timedelta(minutes=9)
                            ).mailed == 0  # fmt: skip
        record_heartbeat(db, T0 + timedelta(minutes=10))
        out = check_health(db, mailer, cfg(("ops@example.org",)), T0 + timedelta(minutes=10))
        assert out.recovered == ("scheduler",)
        body = sink.messages[1].message.get_body(("plain",))
        assert body is not None and "Resolved: The scheduler has not run" in body.get_content()
        assert len(sink.messages) == 2
    finally:
        mailer.close()


def test_an_alert_that_could_not_be_sent_is_retried_by_the_next_check(
    db: Any, sink: SMTPSink
) -> None:
    """SMTP down: the alert is not recorded as announced, so the next check sends it."""
    add_source(db, failures=2)
    sink.stop()
    mailer = SMTPMailer(sink.url, timeout=2)
    try:
        out = check_health(db, mailer, cfg(("ops@example.org",)), T0)
        assert out.opened == () and out.errors and out.mailed == 0
        with db() as s:
            assert health_repo.announced_incidents(s) == {}
        sink.start()
        out = check_health(db, mailer, cfg(("ops@example.org",)), T0 + timedelta(minutes=1))
        assert out.opened == ("source:hf-daily",) and len(sink.messages) == 1
    finally:
        mailer.close()


def test_without_admin_emails_incidents_are_recorded_but_not_mailed(
    db: Any, sink: SMTPSink
) -> None:
    """No ADMIN_EMAILS: the incident is still bookkept (status shows it), no mail is sent."""
    add_source(db, failures=3)
    mailer = SMTPMailer(sink.url)
    try:
        out = check_health(db, mailer, cfg(()), T0)
        assert out.opened == ("source:hf-daily",) and out.mailed == 0
        with db() as s:
            assert list(health_repo.announced_incidents(s)) == ["source:hf-daily"]
        assert sink.messages == []
    finally:
        mailer.close()


def test_concurrent_checks_announce_an_incident_once(db: Any, sink: SMTPSink) -> None:
    """Four checkers at once (web replicas and the scheduler) send the alert exactly once."""
    add_source(db, failures=2)
    barrier = threading.Barrier(4)
    outs: list[Any] = []

    def one() -> None:
        mailer = SMTPMailer(sink.url)
        try:
            barrier.wait()
            outs.append(check_health(db, mailer, cfg(("ops@example.org",)), T0))
        finally:
            mailer.close()

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(o.mailed for o in outs) == 1 and len(sink.messages) == 1


def test_health_config_reads_the_settings() -> None:
    """ADMIN_EMAILS, TICK_STALE_SECONDS and the mail settings become a HealthConfig."""
    from paperalerts.edges.config import Settings

    c = health_config(Settings(admin_emails="a@x.org, b@y.org", tick_stale_seconds=90,
                                            mail_from="pa <alerts@mail.example.org>"))  # fmt: skip
    assert c.admin_emails == ("a@x.org", "b@y.org")
    assert c.tick_stale_after == timedelta(seconds=90) and c.mail_domain == "mail.example.org"


def test_an_alert_that_cannot_be_built_is_raised_and_left_unannounced(
    db: Any, sink: SMTPSink
) -> None:
    """A broken configuration (here MAIL_FROM) raises, and the incident stays unannounced, so
    the alert goes out once the configuration is fixed instead of never."""
    from dataclasses import replace

    from paperalerts.errors import ConfigError

    add_source(db, failures=2)
    mailer = SMTPMailer(sink.url)
    try:
        with pytest.raises(ConfigError, match="MAIL_FROM"):
            check_health(db, mailer, replace(cfg(), mail_from="nobody"), T0)
        with db() as s:
            assert health_repo.announced_incidents(s) == {}
        assert check_health(db, mailer, cfg(), T0).opened == ("source:hf-daily",)
        assert len(sink.messages) == 2
    finally:
        mailer.close()


def test_an_outage_of_five_sources_is_one_email_and_one_recovery(
    db: Any, sink: SMTPSink
) -> None:
    """Five sources failing at once: one alert email per admin naming all five (not five
    emails), and when they work again one recovery email listing all five."""
    names = [f"src-{c}" for c in "abcde"]
    for name in names:
        add_source(db, failures=2, name=name)
    mailer = SMTPMailer(sink.url)
    try:
        out = check_health(db, mailer, cfg(("ops@example.org",)), T0)
        assert sorted(out.opened) == [f"source:{n}" for n in names] and out.mailed == 1
        assert len(sink.messages) == 1
        alert = sink.messages[0].message
        assert str(alert["Subject"]) == (
            "[paperalerts] ALERT: 5 problems: 5 sources (src-a, src-b, src-c, src-d, …)"
        )
        text = alert.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert all(f"Source {n} has failed 2 scrapes in a row" in text for n in names)
        set_failures(db, 0)
        out = check_health(db, mailer, cfg(("ops@example.org",)), T0 + timedelta(hours=1))
        assert len(out.recovered) == 5 and len(sink.messages) == 2
        assert str(sink.messages[1].message["Subject"]).startswith(
            "[paperalerts] Recovered: 5 sources (src-a"
        )
    finally:
        mailer.close()


def test_the_recovery_email_shows_times_in_the_admins_zone(db: Any, sink: SMTPSink) -> None:
    """The recovery email says when the outage started and how long it lasted in words and in
    ADMIN_TIMEZONE ("today 09:00 CET, resolved after 1 h 30 min"), no raw ISO timestamp."""
    add_source(db, failures=2)
    mailer = SMTPMailer(sink.url)
    berlin = HealthConfig(admin_emails=("ops@example.org",), mail_from="pa <alerts@example.org>",
                          mail_domain="example.org", base_url="https://alerts.example.org",
                          timezone="Europe/Berlin")  # fmt: skip
    try:
        check_health(db, mailer, berlin, T0)
        set_failures(db, 0)
        check_health(db, mailer, berlin, T0 + timedelta(minutes=90))
    finally:
        mailer.close()
    recovery = sink.messages[1].message
    for part in ("plain", "html"):
        body = recovery.get_body((part,)).get_content()  # type: ignore[union-attr]
        assert "Reported today 09:00 CET, resolved after 1 h 30 min." in body
        assert "Noticed: today 10:30 CET" in body
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", body), body
    opened = sink.messages[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Since: today 09:00 CET" in opened
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", opened)


def test_admin_timezone_setting_is_checked() -> None:
    """ADMIN_TIMEZONE reaches the HealthConfig; an unknown zone is an error naming it."""
    from paperalerts.edges.config import Settings

    assert health_config(Settings(admin_timezone="Europe/Berlin")).timezone == (
        "Europe/Berlin"
    )
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Base'"):
        health_config(Settings(admin_timezone="Mars/Base"))
