"""The scale benchmark's machinery at a tiny N, so it cannot rot: a fresh PostgreSQL database,
the Redis broker, a real worker process and the Message-ID-counting sink, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import POSTGRES_URL, REDIS_SERVER, require_redis, require_service

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_daily_run.py"


def test_daily_run_benchmark_delivers_every_digest_once_at_tiny_n(tmp_path: Path) -> None:
    """N=20 daily subscribers (loaded by the import, 20% engaged) through real workers: the run
    ends, every subscriber's digest is received exactly once by Message-ID (0 duplicates, 0
    missing, every match delivered), every engaged subscriber's digest carries recommendations,
    and the figures table is printed."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_redis()
    env = {**os.environ, "PAPERALERTS_TEST_POSTGRES_URL": POSTGRES_URL}
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--n",
            "20",
            "--raw-n",
            "20",
            "--concurrency",
            "2",
            "--poll",
            "0.2",
            "--timeout",
            "120",
            "--broker-db",
            "11",  # not the benchmark's own database: a run beside it stays apart
            "--redis",
            REDIS_SERVER,
            "--logdir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    row = re.search(r"^\s+20\s.*$", run.stdout, re.MULTILINE)
    assert row, run.stdout
    cells = row.group(0).split()
    head = re.search(r"^\s+N\s+setup.*$", run.stdout, re.MULTILINE)
    assert head, run.stdout
    named = dict(zip(head.group(0).split(), cells, strict=False))
    assert named["dup"] == "0" and named["miss"] == "0", run.stdout
    assert named["engaged"] == "4" and named["norecs"] == "0", run.stdout
    assert "worker pool" in run.stdout  # peak RSS of every process
    assert "statuses" not in run.stdout  # printed only when a delivery did not end "sent"
