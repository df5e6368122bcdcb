"""The fault suite of issue 21 (items 3-6): each row of `benchmarks/faults_lease.py` run at a
small N on real `paperalerts worker` processes, a Redis broker of its own (a private
redis-server), a fresh PostgreSQL database (reached through a TCP proxy where the row cuts it),
an aiosmtpd sink that keeps every copy: 0 (reader, paper) pairs lost, 0 duplicate Message-IDs
(workers SIGKILLed: at most one per killed sending process, the window between the relay's 250
and the commit that SMTP cannot close), every delivery `sent`, and ticks that keep running under
long mail tasks. The benchmark runs the same rows at N=1000."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import require_service

pytestmark = pytest.mark.slow
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
faults_lease = pytest.importorskip("faults_lease")

N = 100


@pytest.fixture(autouse=True)
def _services() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)


def _clean(row: object) -> None:
    assert row.lost == 0, row  # type: ignore[attr-defined]
    assert "not sent" not in row.result, row  # type: ignore[attr-defined]
    assert row.deliveries >= N * 0.9, row  # type: ignore[attr-defined]


def test_leases_outlived_by_a_slow_relay_and_the_shared_bucket_send_each_message_once() -> None:
    """Batches that take many leases to send (a 50 ms relay, the rate shared by 4 processes,
    6 s leases): every message once."""
    row = faults_lease.lease_row(N)
    _clean(row)
    assert row.duplicates == 0, row


def test_postgresql_cut_three_times_mid_run_resends_nothing() -> None:
    """The workers' database link cut for 1.5 s three times while they send: every 250 is
    recorded once the database answers, nothing arrives twice."""
    row = faults_lease.pg_row(N)
    _clean(row)
    assert row.duplicates == 0, row


def test_sigkilled_workers_lose_nothing_and_duplicate_only_inside_the_smtp_window() -> None:
    """Every worker process SIGKILLed twice mid-run and replaced: nothing lost; copies only in
    the window SMTP cannot close, at most one per killed sending process (counted, reported)."""
    row = faults_lease.kill_row(N)
    _clean(row)
    bound = int(re.search(r"at most (\d+)", row.result).group(1))  # type: ignore[union-attr]
    assert row.duplicates <= bound, row


def test_redis_down_aborts_no_task() -> None:
    """The shared rate bucket's Redis stopped for 5 s mid-run: no task aborts, every message
    once, each process says once that it paces alone."""
    row = faults_lease.redis_row(N)
    _clean(row)
    assert row.duplicates == 0, row
    assert row.result.startswith("0 tasks aborted"), row


def test_ticks_keep_running_while_long_mail_tasks_hold_every_work_process() -> None:
    """With the tick's own worker (the compose and `run` topology), ticks published every 2 s
    run while mail tasks of 25 s hold both work processes."""
    row = faults_lease.ticks_row(200)
    ran, sent = map(int, re.match(r"(\d+) of (\d+)", row.result).groups())  # type: ignore[union-attr]
    assert ran >= sent - 2, row
