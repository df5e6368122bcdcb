"""The demo: the whole mission, offline, against local servers, in a few seconds.

Two sources (a daily-papers API and a feed, served by `PageServer` from the shipped pages), four
subscribers with rules, then the real pipeline steps: day one's scrape (the baseline), day two's
scrape (diff: new and updated papers), matching, digest time, and SMTP into `MailSink`. Nothing
is faked past the servers: the same `scrape_source`, `match_new_events`, `dispatch_due_digests`,
`send_delivery` and `SMTPMailer` as production.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.rules import parse, to_text
from paperalerts.core.schedule import next_digest_at
from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine, session_factory, transaction, upgrade
from paperalerts.edges.db import models as m
from paperalerts.edges.fetch import Fetcher
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.demo.catalog import SUBSCRIBERS, TOPICS
from paperalerts.faces.demo.servers import API_PATH, FEED_PATH, MailSink, PageServer, free_port
from paperalerts.faces.step_config import delivery_config
from paperalerts.pipeline import (
    ScrapeOutcome,
    dispatch_due_digests,
    match_new_events,
    scrape_source,
    send_delivery,
)

SOURCES = (("demo-daily-papers", "hf-api", API_PATH), ("demo-feed", "feed", FEED_PATH))


@dataclass(frozen=True)
class SubscriberResult:
    email: str
    rules: int
    papers: tuple[str, ...]  # ids matched on day two, sorted
    emails: int  # messages the sink received for them


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did, as values (the CLI prints them, the test asserts them)."""

    workdir: Path
    papers_seen: int  # distinct papers stored, both days, both sources
    entries_fetched: int  # entries on all pages scraped
    new_papers: int  # day two's papers new to the sources (they raise alerts)
    updated_papers: int  # day two's known papers that changed or appeared on another source
    subscribers: tuple[SubscriberResult, ...]
    emails_sent: int
    eml_path: Path | None
    html_path: Path | None
    seconds: float


def demo_settings(workdir: Path, *, smtp_url: str, base_url: str) -> Settings:
    """The demo's settings: its own database and outbox under `workdir`, SMTP to the sink, and
    private URLs allowed, for its own 127.0.0.1 servers only (set here, never in the
    environment)."""
    return Settings(
        database_url=f"sqlite:///{workdir / 'demo.db'}",
        broker_url="",
        smtp_url=smtp_url,
        outbox_dir=workdir / "outbox",
        mail_from="paperalerts demo <alerts@paperalerts.example>",
        base_url=base_url,
        secret_key=secrets.token_urlsafe(32),
        postal_address="paperalerts demo, 1 Example Street, Nowhere",
        allow_private_urls=True,
        fetch_retries=0,
        smtp_rate=0,
        admin_emails="",
    )


class Demo:
    """Owns the demo's servers and database; `run()` plays the mission, `close()` stops the
    servers (``with Demo(...) as demo:``). The servers stay up between the two, for --serve."""

    def __init__(self, workdir: Path, console: Console, *, web_port: int | None = None) -> None:
        self.workdir = workdir
        self.console = console
        self.web_port = web_port or free_port()
        self.pages = PageServer()
        self.sink = MailSink()
        self.settings: Settings | None = None
        self.factory: sessionmaker[Session] | None = None

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def __enter__(self) -> Demo:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pages.start()
        self.sink.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.pages.stop()
        self.sink.stop()

    def run(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> DemoSummary:
        started = time.monotonic()
        settings = demo_settings(self.workdir, smtp_url=self.sink.url, base_url=self.web_url)
        self.settings = settings
        day2 = clock()
        day1 = day2 - timedelta(days=1)
        with self._progress() as step:
            with step("Database") as done:
                engine = make_engine(settings.database_url)
                upgrade(engine)
                factory = self.factory = session_factory(engine)
                done(settings.database_url)
            with step("Sources and subscribers") as done:
                n_rules = self._populate(factory, day1)
                done(f"{len(SOURCES)} sources, {len(SUBSCRIBERS)} subscribers, {n_rules} rules")
            with step("Day 1 scrape (baseline: stored, no alerts)") as done:
                first = self._scrape_all(factory, settings, day1)
                done("; ".join(f"{_short(o.source)}: {o.entry_count} entries" for o in first))
            with step("Day 2 scrape and diff") as done:
                self.pages.day = 2
                second = self._scrape_all(factory, settings, day2)
                done(
                    "; ".join(
                        f"{_short(o.source)}: {len(o.new)} new, {o.updated} updated" for o in second
                    )
                )
            with step("Matching") as done:
                matched = match_new_events(factory, now=day2)
                done(f"{matched.events} events -> {matched.matches} matches")
            with step("Digests over SMTP") as done:
                sent = self._send_digests(factory, settings, day2)
                done(f"{sent} emails accepted")
            with step("Saving one email") as done:
                eml, html = self._save_one()
                done(eml.name if eml else "none received")
        return self._summary(factory, first + second, sent, eml, html, started)

    # --- steps -------------------------------------------------------------------------

    def _populate(self, factory: sessionmaker[Session], now: datetime) -> int:
        n_rules = 0
        with transaction(factory) as s:
            for name, kind, path in SOURCES:
                s.add(
                    m.Source(
                        name=name, kind=kind, url=self.pages.base_url + path, every_seconds=3600
                    )
                )
            for topic, query, description in TOPICS:
                s.add(
                    m.Topic(
                        name=topic,
                        query=query,
                        normalized=to_text(parse(query)),
                        description=description,
                        public=True,
                    )
                )
            for sub in SUBSCRIBERS:
                row = m.Subscriber(
                    email=sub.email, status="active", frequency="daily", send_hour=8,
                    timezone=sub.timezone, confirmed_at=now,
                    next_digest_at=next_digest_at("daily", 8, 0, sub.timezone, now),
                )  # fmt: skip
                s.add(row)
                s.flush()
                for rule_name, query in sub.rules:
                    s.add(
                        m.Rule(
                            subscriber_id=row.id,
                            query=query,
                            normalized=to_text(parse(query)),
                            name=rule_name,
                        )
                    )
                    n_rules += 1
        return n_rules

    def _scrape_all(
        self, factory: sessionmaker[Session], settings: Settings, now: datetime
    ) -> list[ScrapeOutcome]:
        with factory() as s:
            ids = list(s.scalars(select(m.Source.id).order_by(m.Source.id)))
        with Fetcher.from_settings(settings) as fetcher:
            return [scrape_source(factory, sid, fetcher=fetcher, now=now) for sid in ids]

    def _send_digests(
        self, factory: sessionmaker[Session], settings: Settings, now: datetime
    ) -> int:
        # Fast-forward: every subscriber's daily send hour is now.
        with transaction(factory) as s:
            s.execute(update(m.Subscriber).values(next_digest_at=now))
        cfg = delivery_config(settings)
        mailer = SMTPMailer(settings.smtp_url, timeout=10)
        try:
            ids = dispatch_due_digests(factory, cfg, now=now)
            outs = [send_delivery(factory, i, mailer=mailer, cfg=cfg, now=now) for i in ids]
        finally:
            mailer.close()
        return sum(1 for o in outs if o.status == "sent")

    def _save_one(self) -> tuple[Path | None, Path | None]:
        """The first received digest as ``mail/<recipient>.eml`` and its HTML part as .html."""
        with self.sink.lock:
            received = list(self.sink.messages)
        if not received:
            return None, None
        first = received[0]
        out = self.workdir / "mail"
        out.mkdir(exist_ok=True)
        stem = first.rcpt_tos[0].replace("@", "_at_")
        eml = out / f"{stem}.eml"
        eml.write_bytes(first.data)
        html_part = first.message.get_body(("html",))
        html = out / f"{stem}.html"
        html.write_text(html_part.get_content() if html_part else "", encoding="utf-8")
        return eml, html

    def _summary(
        self,
        factory: sessionmaker[Session],
        outcomes: list[ScrapeOutcome],
        sent: int,
        eml: Path | None,
        html: Path | None,
        started: float,
    ) -> DemoSummary:
        half = len(outcomes) // 2
        with self.sink.lock:
            received = list(self.sink.messages)
        results = []
        with factory() as s:
            seen = int(s.scalar(select(func.count(m.Paper.id))) or 0)
            for sub in s.scalars(select(m.Subscriber).order_by(m.Subscriber.email)):
                papers = sorted(
                    s.scalars(select(m.Match.paper_id).where(m.Match.subscriber_id == sub.id))
                )
                n_rules = int(
                    s.scalar(select(func.count(m.Rule.id)).where(m.Rule.subscriber_id == sub.id))
                    or 0
                )
                emails = sum(1 for r in received if sub.email in r.rcpt_tos)
                results.append(SubscriberResult(sub.email, n_rules, tuple(papers), emails))
        return DemoSummary(
            workdir=self.workdir,
            papers_seen=seen,
            entries_fetched=sum(o.entry_count for o in outcomes),
            new_papers=len({pid for o in outcomes[half:] for pid, _ in o.new}),
            updated_papers=sum(o.updated for o in outcomes[half:]),
            subscribers=tuple(results),
            emails_sent=sent,
            eml_path=eml,
            html_path=html,
            seconds=time.monotonic() - started,
        )

    @contextmanager
    def _progress(self) -> Iterator[Callable[[str], _Step]]:
        progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        with progress:
            yield lambda title: _Step(progress, title)


def _short(source: str) -> str:
    return source.removeprefix("demo-")


class _Step:
    """One line of progress: a spinner while it runs, a tick and its result when done."""

    def __init__(self, progress: Progress, title: str) -> None:
        self.progress = progress
        self.title = title
        self.task = progress.add_task(title, total=1)

    def __enter__(self) -> Callable[[str], None]:
        def done(result: str) -> None:
            self.progress.update(
                self.task, description=f"{self.title} [dim]({escape(result)})[/]", completed=1
            )

        return done

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if e is not None:
            self.progress.update(self.task, description=f"[red]{self.title}: failed[/]")
        else:
            self.progress.update(self.task, completed=1)
