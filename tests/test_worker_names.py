"""Worker node names (issue 18): two ``paperalerts worker`` processes on one host used to both be
``celery@host`` (DuplicateNodenameWarning; control commands and monitoring could not tell them
apart). Each now is ``paperalerts-<pid>@host`` unless named by ``--name`` or
PAPERALERTS_WORKER_NAME. Real worker processes on the real Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REDIS_SERVER, require_redis
from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine, upgrade
from paperalerts.faces.tasks import make_celery

pytestmark = [pytest.mark.redis, pytest.mark.slow]
BROKER = f"{REDIS_SERVER}/14"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[bytes], Path]]]:
    """Worker processes started by the test, stopped (the whole group) after it."""
    require_redis()
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    # A worker refuses to start without a migrated database (it never creates one on the side).
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    engine.dispose()
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    yield procs
    for p, _ in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p, _ in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def _start(procs: list[tuple[subprocess.Popen[bytes], Path]], tmp: Path, *args: str,
           env: dict[str, str] | None = None) -> None:
    log = tmp / f"worker{len(procs)}.log"
    full_env = {**os.environ, "PAPERALERTS_DATABASE_URL": f"sqlite:///{tmp / 'x.db'}",
                "PAPERALERTS_BROKER_URL": BROKER, "PAPERALERTS_SECRET_KEY": "k" * 32}
    full_env.pop("PAPERALERTS_WORKER_NAME", None)
    full_env.update(env or {})
    p = subprocess.Popen([sys.executable, "-m", "paperalerts", "worker", "--concurrency", "1",
                          *args], env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    procs.append((p, log))


def test_two_workers_on_one_host_have_distinct_names_and_names_can_be_set(
    workers: list[tuple[subprocess.Popen[bytes], Path]], tmp_path: Path
) -> None:
    """Two default workers answer a ping as two different ``paperalerts-<pid>@host`` nodes
    (no DuplicateNodenameWarning in their logs); ``--name`` and PAPERALERTS_WORKER_NAME name a
    worker as given (``%h`` = the host)."""
    host = socket.gethostname()
    _start(workers, tmp_path)
    _start(workers, tmp_path)
    _start(workers, tmp_path, "--name", "mail-a@%h")
    _start(workers, tmp_path, env={"PAPERALERTS_WORKER_NAME": "scrape-b@%h"})
    expected = {f"paperalerts-{workers[0][0].pid}@{host}",
                f"paperalerts-{workers[1][0].pid}@{host}", f"mail-a@{host}", f"scrape-b@{host}"}
    app = make_celery(Settings(broker_url=BROKER, secret_key="k" * 32,
                               database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    seen: set[str] = set()
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and seen != expected:
        for p, log in workers:
            assert p.poll() is None, log.read_text()
        seen |= {name for reply in app.control.ping(timeout=2.0) for name in reply}
    assert seen == expected
    for _, log in workers:
        assert "DuplicateNodenameWarning" not in log.read_text()
