"""`paperalerts run` as a real subprocess on embedded defaults (SQLite, the embedded broker) with
SMTP into a real aiosmtpd sink and sources served by a local HTTP server over the fixtures: it
serves /healthz, accepts a sign-up, delivers alerts within a bound, loses nothing and sends
nothing twice across a SIGKILL and a restart, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import fixture_file, free_port
from paperalerts.edges.db import make_engine, session_factory
from paperalerts.edges.db import models as m
from smtp_sink import SMTPSink

pytestmark = pytest.mark.slow
DAYS = (
    "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json",
    "hf_api_daily_papers/hf_api_daily_papers_2024-03-13.json",
)
WORD = "video"


def expected(day: str) -> set[str]:
    """Ids of the day's papers whose title or abstract has the word (read from the file)."""
    items = json.loads(fixture_file(day).read_bytes())
    return {
        i["paper"]["id"]
        for i in items
        if re.search(rf"\b{WORD}s?\b", (i["paper"]["title"] + " " + i["paper"]["summary"]).lower())
    }


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Service:
    """A data directory, an SMTP sink and `paperalerts run` started (and restarted) on them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sink = SMTPSink().start()
        self.port = free_port()
        self.db_url = f"sqlite:///{tmp / 'pa.db'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
        self.env.update(
            {
                "PAPERALERTS_DATABASE_URL": self.db_url,
                "PAPERALERTS_BROKER_URL": "",
                "PAPERALERTS_SMTP_URL": self.sink.url,
                "PAPERALERTS_ALLOW_PRIVATE_URLS": "true",
                "PAPERALERTS_BASE_URL": f"http://127.0.0.1:{self.port}",
                "PAPERALERTS_MAIL_FROM": "paperalerts <alerts@example.org>",
                "PAPERALERTS_SECRET_KEY": "run-test-secret-" + "x" * 20,
                "PAPERALERTS_SMTP_RATE": "0",
                "PAPERALERTS_FETCH_RETRIES": "0",
                "PAPERALERTS_TICK_SECONDS": "1",
                "PAPERALERTS_DELIVERY_LEASE_SECONDS": "3",
                "PAPERALERTS_SMTP_TIMEOUT": "0.5",  # 6 steps x 0.5 s fit in the 3 s lease
                "PAPERALERTS_DELIVERY_STALE_SECONDS": "2",
                "PAPERALERTS_DELIVERY_BACKOFF_SECONDS": "1",
            }
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "paperalerts", *args],
            env=self.env, cwd=self.tmp, capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def start(self) -> None:
        self.runs += 1
        log = (self.tmp / f"run{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paperalerts", "run", "--no-defaults", "--port",
             str(self.port), "--concurrency", "2", "--grace", "15"],
            env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self.healthy, 60, "/healthz")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def db(self) -> Any:
        return session_factory(make_engine(self.db_url))

    def received(self, to: str) -> dict[str, set[str]]:
        """Message-ID -> the HF paper ids linked in that message, for one recipient."""
        out: dict[str, set[str]] = defaultdict(set)
        for r in list(self.sink.messages):
            msg = email.message_from_bytes(r.data, policy=email.policy.default)
            if str(msg["To"]) != to:
                continue
            text = msg.get_body(("plain",))
            assert text is not None
            out[str(msg["Message-ID"])] |= set(
                re.findall(r"huggingface\.co/papers/(\d{4}\.\d{5})", text.get_content())
            )
        return out

    def papers_received(self, to: str) -> set[str]:
        return set().union(*self.received(to).values()) if self.received(to) else set()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.sink.stop()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path)
    try:
        yield svc
    finally:
        svc.close()


def test_run_serves_signs_up_delivers_and_survives_sigkill(
    service: Service, static_server: str
) -> None:
    """One command gives a working service: /healthz answers, a sign-up gets its confirmation
    email, an instant subscriber gets day 1's matching papers; SIGKILLed mid-run and restarted,
    day 2's papers arrive too, every matching paper exactly once across distinct Message-IDs,
    and Ctrl-C then stops it with exit code 0."""
    day1, day2 = expected(DAYS[0]), expected(DAYS[1])
    assert day1 and day2 and not day1 & day2  # the files make this a real test
    service.cli("init", "--no-defaults")
    service.cli("sources", "add", "day1", "hf-api", f"{static_server}/{DAYS[0]}", "--backfill")
    service.cli("subscribers", "add", "ann@example.org", "--frequency", "instant", "--confirmed")
    service.cli("rules", "add", "ann@example.org", WORD)

    started = time.monotonic()
    service.start()
    health = httpx.get(f"{service.url}/healthz", timeout=5).json()
    assert health["database"] == "ok"

    # A sign-up through the real form (CSRF token from the page) mails a confirmation link.
    with httpx.Client(base_url=service.url, timeout=10) as web:
        form = web.get("/signup")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, "the sign-up form carries a CSRF token"
        answer = web.post(
            "/signup",
            data={
                "csrf_token": token.group(1),
                "email": "dora@example.org",
                "rules": WORD,
                "frequency": "daily",
                "timezone": "UTC",
            },
        )
        assert answer.status_code == 303  # post/redirect/get
    wait_for(
        lambda: any("dora@example.org" in r.rcpt_tos for r in service.sink.messages),
        30,
        "the confirmation email",
    )
    confirm = next(r for r in service.sink.messages if "dora@example.org" in r.rcpt_tos)
    assert f"{service.url}/confirm/" in confirm.message.get_body(("plain",)).get_content()

    wait_for(lambda: service.papers_received("ann@example.org") >= day1, 60, "day 1's alert")
    assert time.monotonic() - started < 90
    assert service.papers_received("ann@example.org") == day1

    # Day 2 arrives while SMTP is slow; kill everything hard in the middle of it.
    service.sink.slow_data(2.0)
    service.cli("sources", "add", "day2", "hf-api", f"{static_server}/{DAYS[1]}", "--backfill")
    factory = service.db()

    def sending() -> bool:
        with factory() as s:
            return bool(
                s.scalars(select(m.Delivery.id).where(m.Delivery.status == "sending")).first()
            )

    wait_for(sending, 60, "a send in flight")
    assert service.proc is not None
    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait(10)
    wait_for(lambda: not service.healthy(), 15, "the children to die with the supervisor")

    service.sink.slow_data(0.0)
    service.start()
    wait_for(
        lambda: service.papers_received("ann@example.org") >= day1 | day2,
        90,
        "day 2's papers after the restart",
    )
    wait_for(lambda: _all_settled(factory), 30, "every delivery settled")

    got = service.received("ann@example.org")
    assert set().union(*got.values()) == day1 | day2  # nothing lost, nothing foreign
    # Nothing twice: no paper in two different emails (a resend of the very same email after a
    # kill in its last instant carries the same Message-ID, which receivers de-duplicate).
    listed = [pid for ids in got.values() for pid in ids]
    assert len(listed) == len(set(listed))
    with factory() as s:
        sent = s.scalars(
            select(m.Delivery.message_id)
            .join(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .where(m.Delivery.status == "sent", m.Subscriber.email == "ann@example.org")
        ).all()
    assert sorted(set(sent)) == sorted(got)

    assert service.proc is not None
    service.proc.send_signal(signal.SIGINT)
    assert service.proc.wait(40) == 0
    assert not service.healthy()


def _all_settled(factory: Any) -> bool:
    with factory() as s:
        return not s.scalars(
            select(m.Delivery.id).where(m.Delivery.status.in_(("queued", "sending")))
        ).first()
