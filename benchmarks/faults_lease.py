"""Fault-matrix rows for leases and infrastructure faults (issue 21 items 3-6), on real workers.

    .venv/bin/python benchmarks/faults_lease.py [--n 1000] [--rows lease,pg,kill,redis,ticks]

(`benchmarks/bench_faults.py` prints these rows with the rest of the fault matrix.) Each row
makes a fresh PostgreSQL database with `n` daily subscribers (one word rule each, two real HF days
scraped and matched: ~n digests, dispatched at once), starts real `paperalerts worker` processes
on a Redis broker of the row's own (a private redis-server on a free port), sends through the
real `SMTPMailer` into an aiosmtpd sink (tests/smtp_sink.py) that keeps every message, repeats
included, and plays the scheduler's sweep once a second (what the tick does: hand out again what
is due or whose lease ran out). A row ends when every delivery is `sent` (or at its timeout),
then counts at the sink:

- *lease vs a slow relay and the shared rate bucket*: 20 msg/s shared through Redis by 4 worker
  processes, each DATA answered after 50 ms, 6 s leases: each batch of 50 outlives its lease
  many times over, so every row needs the heartbeat; the rate wait happens before the claim.
- *PostgreSQL unreachable 1.5 s, three times*: the workers reach PostgreSQL through a TCP proxy
  that is cut (every connection dropped, new ones refused) three times during the run.
- *workers SIGKILLed twice*: every worker process killed mid-run (twice), new ones started. The
  only copies allowed are those SMTP itself cannot prevent (the relay's 250, then the kill before
  the commit): at most one per killed process.
- *Redis (the rate bucket) down 5 s*: the shared bucket's own redis-server stopped mid-run and
  started again; tasks must not abort (their rows would wait out their lease).
- *ticks under long mail tasks*: every DATA answered after 0.3 s, ticks published every 2 s for
  30 s; counted as the ticks that ran in that window. With the tick's own worker (compose and
  `run`) against the old topology (one worker on every queue) in the same run.

"lost": (reader, paper) pairs matched and in no message the sink received; "dup": extra copies of
a Message-ID.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from faults_dispatch import SEND, Factory, Row, database, populate, print_table, statuses, tally
from sqlalchemy.engine import make_url

from paperalerts.edges.config import Settings
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.tasks import SEND_CHUNK, make_celery
from paperalerts.pipeline import dispatch_due_digests, sweep

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from fault_support import PrivateRedis, TCPProxy  # noqa: E402  (tests/ is on the path)
from smtp_sink import SMTPSink  # noqa: E402

SECRET = "fault-matrix-" + "x" * 24
FROM = "paperalerts <alerts@example.org>"


def wall() -> datetime:
    return datetime.now(UTC)


@dataclass
class Stack:
    """One row's services: database (maybe behind a proxy), broker, sink, worker processes."""

    db: Factory
    db_url: str  # what the workers connect to
    broker: str
    sink: SMTPSink
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: int = 0

    def settings(self) -> Settings:
        return Settings(
            database_url=self.db_url, broker_url=self.broker, secret_key=SECRET, mail_from=FROM,
            smtp_url=self.sink.url, delivery_lease_seconds=int(self.env["LEASE"]),
            delivery_stale_seconds=2, delivery_backoff_seconds=1,
        )

    def worker(self, queues: str, concurrency: int) -> None:
        """A `paperalerts worker` process on `queues` (its own process group)."""
        self.started += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
        env.update(
            PAPERALERTS_DATABASE_URL=self.db_url, PAPERALERTS_BROKER_URL=self.broker,
            PAPERALERTS_SMTP_URL=self.sink.url, PAPERALERTS_SECRET_KEY=SECRET,
            PAPERALERTS_MAIL_FROM=FROM, PAPERALERTS_DELIVERY_STALE_SECONDS="2",
            PAPERALERTS_DELIVERY_BACKOFF_SECONDS="1",
            PAPERALERTS_DELIVERY_LEASE_SECONDS=self.env["LEASE"],
            PAPERALERTS_SMTP_TIMEOUT=self.env.get("TIMEOUT", "1"),
            PAPERALERTS_SMTP_RATE=self.env.get("RATE", "0"),
            PAPERALERTS_SMTP_RATE_REDIS_URL=self.env.get("RATE_REDIS", ""),
        )
        log = (self.tmp / f"worker{self.started}.log").open("ab")
        cmd = [sys.executable, "-m", "paperalerts", "worker", "--queues", queues,
               "--concurrency", str(concurrency), "--loglevel", "info",
               "--name", f"f{self.started}-{os.getpid()}@%h"]  # fmt: skip
        self.procs.append(
            subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        )

    def ready(self, timeout: float = 120) -> None:
        """Until every started worker logged "ready"."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.log_count(b" ready.") >= self.started:
                return
            time.sleep(0.2)
        raise RuntimeError(f"workers not ready; see {self.tmp}")

    def log_count(self, needle: bytes) -> int:
        return sum(p.read_bytes().count(needle) for p in self.tmp.glob("worker*.log"))

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Signal every worker's process group; how many sending processes (pool children)
        that killed."""
        n = 0
        for p in self.procs:
            if p.poll() is None:
                n += len(_group(p.pid)) - 1
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, sig)
                p.wait(60)
        self.procs = []
        return n


def _group(pgid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


@contextmanager
def stack(n: int, env: dict[str, str], *, proxy: TCPProxy | None = None) -> Iterator[Stack]:
    """A populated database with n digests dispatched, a private Redis broker, a sink."""
    tmp = Path(tempfile.mkdtemp(prefix="faults-lease-"))
    with database() as db, PrivateRedis(tmp) as broker, SMTPSink() as sink:
        url = db.kw["bind"].url.render_as_string(hide_password=False)
        if proxy is not None:
            u = make_url(url)
            proxy.target = (u.host or "127.0.0.1", u.port or 5432)
            proxy.restore()
            url = u.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        populate(db, n, match=True)
        st = Stack(db, url, broker.url, sink, tmp, env)
        try:
            yield st
        finally:
            st.kill()
            if proxy is not None:
                proxy.cut()
            shutil.rmtree(tmp, ignore_errors=True)


def drive(st: Stack, *, timeout: float, during: Callable[[float], None] = lambda t: None) -> float:
    """Dispatch the digests, hand them to the workers in chunks (as the tick does), then play
    the sweep once a second until every delivery is sent; `during(elapsed)` is called each
    round (where a row injects its faults). Seconds taken."""
    cfg = delivery_config(st.settings())
    client = make_celery(st.settings())
    # The dispatcher reads the database directly (never through the proxy: the workers' link
    # is the one being cut).
    ids = dispatch_due_digests(st.db, cfg, now=SEND)
    start = time.monotonic()
    try:
        _hand_out(client, ids)
        while time.monotonic() - start < timeout:
            during(time.monotonic() - start)
            if statuses(st.db) == {"sent": len(ids)}:
                break
            with contextlib.suppress(Exception):  # the sweep itself may meet a fault
                _hand_out(client, sweep(st.db, cfg, now=wall()))
            time.sleep(1.0)
        took = time.monotonic() - start
        time.sleep(2.0)  # a copy still in flight would arrive now
        return took
    finally:
        client.close()


def _hand_out(client: object, ids: list[int]) -> None:
    for lo in range(0, len(ids), SEND_CHUNK):
        client.send_task(  # type: ignore[attr-defined]
            "paperalerts.send_deliveries", args=[ids[lo : lo + SEND_CHUNK]], queue="mail"
        )


def _row(fault: str, st: Stack, took: float, result: str, baseline: str) -> Row:
    made, lost, dup = tally(st.db, st.sink)
    left = statuses(st.db)
    extra = "" if set(left) <= {"sent"} else f"; not sent: {dict(left)}"
    return Row(fault, made, lost, dup, result + extra, baseline, took)


def _rate(n: int) -> str:
    """A send rate that makes sending take about 25 s whatever `n`: long enough for the row's
    faults to land in the middle of it."""
    return f"{max(4.0, n / 25):g}"


def lease_row(n: int = 1000) -> Row:
    with stack(n, {"LEASE": "6", "TIMEOUT": "1", "RATE": _rate(n)}) as st:
        st.env["RATE_REDIS"] = st.broker.replace("/0", "/1")
        st.sink.slow_data(0.05)
        for _ in range(2):
            st.worker("mail", 2)
        st.ready()
        took = drive(st, timeout=60 + n / 10)
        return _row(
            f"lease vs slow relay (50 ms a DATA) + shared bucket ({st.env['RATE']} msg/s), "
            "6 s leases", st, took,
            "every batch outlives its lease; kept by the heartbeat",
            "issue: 4 messages 8x each, 13/13 slow ones duplicated",
        )


def pg_row(n: int = 1000) -> Row:
    proxy = TCPProxy(("127.0.0.1", 5432))
    with stack(n, {"LEASE": "10", "TIMEOUT": "1", "RATE": _rate(n)}, proxy=proxy) as st:
        for _ in range(2):
            st.worker("mail", 2)
        st.ready()
        blips = [3.0, 9.0, 15.0]

        def during(t: float) -> None:
            if blips and t >= blips[0]:
                blips.pop(0)
                proxy.blip(1.5)

        took = drive(st, timeout=90 + n / 10, during=during)
        return _row(
            "PostgreSQL unreachable 1.5 s, 3 times", st, took,
            f"{proxy.cuts} cuts; the 250s written on fresh connections",
            "issue: one duplicate per sending batch (8)",
        )


def kill_row(n: int = 1000) -> Row:
    with stack(n, {"LEASE": "10", "TIMEOUT": "1", "RATE": _rate(n)}) as st:
        for _ in range(2):
            st.worker("mail", 2)
        st.ready()
        kills = [3.0, 10.0]
        killed: list[int] = []

        def during(t: float) -> None:
            if kills and t >= kills[0]:
                kills.pop(0)
                killed.append(st.kill())
                for _ in range(2):
                    st.worker("mail", 2)

        took = drive(st, timeout=120 + n / 10, during=during)
        dup = tally(st.db, st.sink)[2]
        return _row(
            "workers SIGKILLed twice (10 s lease)", st, took,
            f"{sum(killed)} sending processes killed; {dup} copies in the 250-to-commit window "
            f"(at most {sum(killed)}: one per killed process)",
            "issue: 1-6 duplicates per run; 170 rows held 5.6 min by a 300 s lease",
        )


def redis_row(n: int = 1000) -> Row:
    tmp = Path(tempfile.mkdtemp(prefix="faults-bucket-"))
    with PrivateRedis(tmp) as bucket, stack(
        n, {"LEASE": "10", "TIMEOUT": "1", "RATE": _rate(n), "RATE_REDIS": bucket.url}
    ) as st:
        for _ in range(2):
            st.worker("mail", 2)
        st.ready()
        plan = {"stop": 5.0, "start": 10.0}

        def during(t: float) -> None:
            if "stop" in plan and t >= plan["stop"]:
                del plan["stop"]
                bucket.stop()
            elif "start" in plan and t >= plan["start"]:
                del plan["start"]
                bucket.start()

        took = drive(st, timeout=60 + n / 10, during=during)
        aborted = st.log_count(b"raised unexpected")
        fallback = st.log_count(b"shared send-rate bucket unreachable")
        row = _row(
            "Redis (the shared rate bucket) down 5 s", st, took,
            f"{aborted} tasks aborted; {fallback} fallback log lines (one per process)",
            "issue: 8 tasks aborted, their rows waited out the lease",
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return row


def _ticks_ran(st: Stack, queues_of_worker: list[tuple[str, int]], window: float) -> int:
    for queues, c in queues_of_worker:
        st.worker(queues, c)
    st.ready()
    client = make_celery(st.settings())
    cfg = delivery_config(st.settings())
    ids = dispatch_due_digests(st.db, cfg, now=SEND)
    _hand_out(client, ids)
    time.sleep(1.0)  # the mail tasks take every work process
    end = time.monotonic() + window
    while time.monotonic() < end:
        client.send_task("paperalerts.tick")
        time.sleep(2.0)
    ran = sum(
        len(re.findall(rb"paperalerts\.tick\[[^\]]+\] succeeded", p.read_bytes()))
        for p in st.tmp.glob("worker*.log")
    )
    client.close()
    st.kill()
    return ran


def ticks_row(n: int = 1000) -> Row:
    """Mail tasks of 50 messages at 0.5 s each (25 s a task, under a 40 s lease) keep the work
    processes busy for the whole window (n >= 200 gives 4 tasks for 2 processes)."""
    window = 30.0
    with stack(n, {"LEASE": "40", "TIMEOUT": "1"}) as st:
        st.sink.slow_data(0.5)
        ran = _ticks_ran(st, [("scrape,match,mail", 2), ("tick", 1)], window)
    with stack(n, {"LEASE": "40", "TIMEOUT": "1"}) as old:
        old.sink.slow_data(0.5)
        old_ran = _ticks_ran(old, [("tick,scrape,match,mail", 2)], window)
    sent = int(window // 2)
    return Row(
        "ticks while long mail tasks run (0.5 s a message)", 0, 0, 0,
        f"{ran} of {sent} ticks ran in {window:.0f} s (the tick's own worker)",
        f"{old_ran} of {sent} with one worker on every queue (the old compose default)", window,
    )


ROWS: dict[str, Callable[[int], Row]] = {
    "lease": lease_row, "pg": pg_row, "kill": kill_row, "redis": redis_row, "ticks": ticks_row,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="daily subscribers per row")
    ap.add_argument("--rows", default=",".join(ROWS), help="which rows, comma-separated")
    args = ap.parse_args()
    logging.getLogger("paperalerts").setLevel(logging.ERROR)
    print_table([ROWS[r](args.n) for r in args.rows.split(",")])


if __name__ == "__main__":
    main()
