"""Sign-up answer time for an address we know against a new one: the timing side channel.

    .venv/bin/python benchmarks/bench_signup.py [--n 150] [--database-url URL]

Serves the real app with uvicorn on a free port (a temporary SQLite database unless
--database-url names an empty one, e.g. a fresh PostgreSQL database), with 2 public topics and N
active subscribers, and posts the sign-up form over HTTP, alternating a new address and a known
one, N of each. Each POST is timed from send to the full answer (the redirect); the email goes
out after the answer, so a short pause between posts lets it finish. Prints the median and the
mean of each kind and the ratio known/new measured in the same run: 1.00 means an observer
cannot tell them apart by time. Works against any checkout's code (run it with
``PYTHONPATH=<checkout>/src`` to measure another version: same command, same figures).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import make_engine, session_factory, transaction, upgrade
from paperalerts.edges.mailer import FileMailer
from paperalerts.faces.web import create_app

_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=150, help="sign-ups of each kind")
    ap.add_argument("--database-url", default="", help="an empty database (default: SQLite)")
    ap.add_argument("--pause", type=float, default=0.05, help="seconds between posts")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-signup-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:
        topics = [m.Topic(name=f"Topic {i}", query=f"topic{i}", normalized=f"topic{i}")
                  for i in range(2)]
        s.add_all(topics)
        s.add_all(m.Subscriber(email=f"known-{i}@example.org", status="active")
                  for i in range(args.n))
        s.flush()
        topic_ids = [str(t.id) for t in topics]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(base_url=base, secret_key="bench-signup-" + "x" * 24,
                        database_url=url, signup_limit_per_ip=10**6,
                        signup_limit_per_address=10**6)
    app = create_app(settings, mailer=FileMailer(tmp / "outbox"), session_factory=factory)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    times: dict[str, list[float]] = {"new": [], "known": []}
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            token = _CSRF_RE.search(client.get("/signup").text)
            assert token, "no CSRF token on the sign-up page"
            for i in range(args.n + 10):  # the first 10 pairs warm up and are not counted
                for kind in ("new", "known"):
                    form = {"csrf_token": token.group(1), "email": f"{kind}-{i}@example.org",
                            "frequency": "daily", "hour": "8", "weekday": "0",
                            "timezone": "Europe/Berlin", "rules": "diffusion model",
                            "topics": topic_ids}
                    started = time.perf_counter()
                    r = client.post("/signup", data=form)
                    took = time.perf_counter() - started
                    assert r.status_code == 303, (r.status_code, r.text[:300])
                    if i >= 10:
                        times[kind].append(took * 1000)
                    time.sleep(args.pause)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"sign-up answer, {args.n} of each, {engine.dialect.name}")
    for kind in ("new", "known"):
        v = times[kind]
        print(f"  {kind:5} address: median {med[kind]:6.2f} ms  mean {statistics.mean(v):6.2f} ms"
              f"  p90 {sorted(v)[int(len(v) * 0.9)]:6.2f} ms")
    print(f"  ratio known/new (median): {med['known'] / med['new']:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
