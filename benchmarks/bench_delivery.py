"""Delivery throughput: digest -> render -> message -> SMTP, against raw smtplib in the same run.

    .venv/bin/python benchmarks/bench_delivery.py [--n 10000] [--new-conn-n 2000]

N digests of ten real papers each (the HF daily-papers fixtures, read with json) are built,
rendered, turned into messages and sent through `SMTPMailer` (pacing off) to an aiosmtpd sink that
only counts, running in its own process. In the same run, the same messages' bytes are sent with
raw smtplib over one reused connection (the ceiling) and with a new connection per message (on
the first `--new-conn-n`). "Whole path" = digest + render + message + SMTPMailer.send time.
Prints ms per digest for each step, messages/s, the ratios against the
ceiling, and peak memory. Goals: render + message build <= 2 ms per digest; SMTPMailer >= 50% of
the raw ceiling.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import re
import resource
import smtplib
import sys
import time
from datetime import UTC, datetime, timedelta
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from paperalerts.core.digest import MatchedItem, SourceStatus, SubscriberInfo, build_digest
from paperalerts.core.message import POLICY, build_message
from paperalerts.core.papers import Paper
from paperalerts.core.render import Footer, render_digest
from paperalerts.edges.mailer import SMTPMailer

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("PAPERALERTS_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))
NOW = datetime(2026, 5, 8, 8, 0, tzinfo=UTC)
CHUNK = 250
RULES = [
    (1, "Language models", ["language", "model"]),
    (2, "Diffusion", ["diffusion"]),
    (3, "Agents", ["agent"]),
    (4, "Reinforcement learning", ["reinforcement"]),
]
FOOTER = Footer(
    "You subscribed to research-paper alerts at alerts.example.org.",
    "Paper Alerts, 1 Example Street, 10115 Berlin",
    "https://alerts.example.org/m/MANAGE",
    "https://alerts.example.org/u/UNSUB",
)
SOURCES = [
    SourceStatus("HF daily papers", "hf-api", "ok", NOW - timedelta(minutes=2), None, 37),
    SourceStatus("arXiv cs.LG", "arxiv", "ok", NOW - timedelta(hours=1), None, 120),
]


# --- inputs ---------------------------------------------------------------------------------


def load_papers() -> list[Paper]:
    """Every paper of the HF /api/daily_papers fixtures, whitespace-normalised."""
    papers = []
    for path in sorted((FIXTURES / "hf_api_daily_papers").glob("*.json")):
        for entry in json.loads(path.read_bytes()):
            p = entry["paper"]
            org = p.get("organization") or {}
            papers.append(
                Paper(
                    id=p["id"],
                    title=" ".join((entry.get("title") or p["title"]).split()),
                    source="hf-api",
                    abstract=" ".join(p.get("summary", "").split()),
                    authors=tuple(a["name"] for a in p.get("authors", [])),
                    url=f"https://huggingface.co/papers/{p['id']}",
                    code_url=p.get("githubRepo"),
                    organization=org.get("fullname"),
                    published=datetime.fromisoformat(p["publishedAt"].replace("Z", "+00:00")),
                    upvotes=p.get("upvotes"),
                    comments=entry.get("numComments"),
                )
            )
    return papers


def explanation(paper: Paper, terms: list[str]) -> dict[str, Any]:
    hits = []
    for term in terms:
        pattern = re.compile(rf"\b{re.escape(term)}\w*", re.IGNORECASE)
        for field in ("title", "abstract"):
            for m in pattern.finditer(getattr(paper, field)):
                hits.append({"field": field, "term": term, "start": m.start(), "end": m.end()})
    return {"terms": terms, "hits": hits}


def digest_inputs(papers: list[Paper], i: int, cache: dict[tuple[str, int], Any]) -> list[Any]:
    """Digest i: ten consecutive papers (rotating), each under one or two rules."""
    items = []
    for k in range(10):
        p = papers[(i * 7 + k) % len(papers)]
        for rule_id, name, terms in (RULES[k % 4], RULES[(k + i) % 4])[: 1 + (k % 2)]:
            key = (p.id, rule_id)
            if key not in cache:
                cache[key] = explanation(p, terms)
            items.append(MatchedItem(p, rule_id, name, cache[key], NOW))
    return items


def make_message(
    papers: list[Paper], i: int, cache: dict[Any, Any]
) -> tuple[EmailMessage, dict[str, float]]:
    t0 = time.perf_counter()
    sub = SubscriberInfo(f"user{i}@example.org", f"User {i}", "daily", "Europe/Berlin")
    digest = build_digest(
        sub,
        digest_inputs(papers, i, cache),
        SOURCES,
        now=NOW,
        online_url=f"https://alerts.example.org/v/VIEW{i}",
    )
    t1 = time.perf_counter()
    rendered = render_digest(digest, FOOTER)
    t2 = time.perf_counter()
    msg = build_message(
        rendered,
        from_addr="Paper Alerts <alerts@example.org>",
        to_addr=sub.email,
        to_name=sub.name,
        delivery_id=i,
        now=NOW,
        base_url="https://alerts.example.org",
        unsubscribe_token=f"TOKEN{i}.x",
        list_id="digest.example.org",
        mail_domain="example.org",
    )
    t3 = time.perf_counter()
    return msg, {"digest": t1 - t0, "render": t2 - t1, "message": t3 - t2}


def flatten(msg: EmailMessage) -> bytes:
    buf = io.BytesIO()
    BytesGenerator(buf, policy=POLICY).flatten(msg, linesep="\r\n")
    return buf.getvalue()


# --- the sink -------------------------------------------------------------------------------


class _CountingHandler:
    def __init__(self, count: Any) -> None:
        self.count = count

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count.value += 1  # one writer (the sink's event loop): no lock needed
        return "250 OK"


def _run_sink(port: int, count: Any, ready: Any, stop: Any) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(_CountingHandler(count), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- runs -----------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="digests to send (default 10000)")
    ap.add_argument(
        "--new-conn-n",
        type=int,
        default=2_000,
        help="messages for the new-connection-per-message run (default 2000)",
    )
    args = ap.parse_args()
    n, n_new = args.n, min(args.new_conn_n, args.n)

    papers = load_papers()
    ctx = mp.get_context("fork")
    count, ready, stop = ctx.Value("q", 0), ctx.Event(), ctx.Event()
    port = free_port()
    sink = ctx.Process(target=_run_sink, args=(port, count, ready, stop), daemon=True)
    sink.start()
    if not ready.wait(10):
        sys.exit("the aiosmtpd sink did not start")
    print(
        f"{n} digests x 10 papers (from {len(papers)} fixture papers); "
        f"sink: aiosmtpd in process {sink.pid}"
    )

    # In chunks: build, render and make each message (timed per step), send the chunk through
    # SMTPMailer (its flattening included), then send the same messages' bytes (flattened
    # untimed) with raw smtplib over one reused connection, and the first `n_new` of them with a
    # new connection each. Alternating per chunk keeps the comparison fair on a busy machine.
    cache: dict[Any, Any] = {}
    make_message(papers, 0, cache)  # warm the template cache
    rss_before = peak_rss_mb()
    steps = {"digest": 0.0, "render": 0.0, "message": 0.0}
    mailer_time = raw_time = new_time = 0.0
    sizes = 0
    mailer = SMTPMailer(f"smtp://127.0.0.1:{port}", rate=None)
    conn = smtplib.SMTP("127.0.0.1", port)
    for lo in range(0, n, CHUNK):
        msgs = []
        for i in range(lo, min(lo + CHUNK, n)):
            msg, spent = make_message(papers, i, cache)
            msgs.append(msg)
            for k, v in spent.items():
                steps[k] += v
        t = time.perf_counter()
        for m in msgs:
            mailer.send(m)
        mailer_time += time.perf_counter() - t
        data = [(m["To"].addresses[0].addr_spec, flatten(m)) for m in msgs]
        sizes += sum(len(raw) for _, raw in data)
        t = time.perf_counter()
        for to, raw in data:
            conn.sendmail("alerts@example.org", [to], raw)
        raw_time += time.perf_counter() - t
        t = time.perf_counter()
        for to, raw in data[: max(0, min(len(data), n_new - lo))]:
            c = smtplib.SMTP("127.0.0.1", port)
            c.sendmail("alerts@example.org", [to], raw)
            c.quit()
        new_time += time.perf_counter() - t
    conn.quit()
    mailer.close()
    pipeline_time = sum(steps.values()) + mailer_time

    stop.set()
    sink.join(10)
    expected = 2 * n + n_new
    ms = {k: v / n * 1000 for k, v in steps.items()}
    render_build = ms["render"] + ms["message"]
    ceiling = n / raw_time
    mailer_rate = n / mailer_time
    print(f"  build_digest        {ms['digest']:7.3f} ms/digest")
    print(f"  render (Jinja+CSS)  {ms['render']:7.3f} ms/digest")
    print(f"  build_message       {ms['message']:7.3f} ms/digest")
    print(
        f"  render+message      {render_build:7.3f} ms/digest   goal <= 2 ms: "
        f"{'met' if render_build <= 2 else 'MISSED'}"
    )
    print(f"  message size        {sizes / n / 1024:7.1f} KB average")
    print(f"  SMTPMailer.send     {mailer_rate:7.0f} msg/s  (prepared messages, one connection)")
    print(f"  whole path          {n / pipeline_time:7.0f} msg/s  (digest+render+message+send)")
    print(f"  raw smtplib, reused {ceiling:7.0f} msg/s  (ceiling, same bytes)")
    print(
        f"  raw smtplib, new    {n_new / new_time:7.0f} msg/s  (new connection per message, "
        f"{n_new} messages)"
    )
    print(
        f"  SMTPMailer / ceiling        {mailer_rate / ceiling:6.0%}   goal >= 50%: "
        f"{'met' if mailer_rate / ceiling >= 0.5 else 'MISSED'}"
    )
    print(f"  whole path / ceiling        {n / pipeline_time / ceiling:6.0%}")
    print(f"  new connection / ceiling    {n_new / new_time / ceiling:6.0%}")
    print(
        f"  peak RSS: {peak_rss_mb():.0f} MB ({peak_rss_mb() - rss_before:+.0f} MB while sending;"
        f" {CHUNK}-message chunks held)"
    )
    print(f"  sink accepted {count.value} of {expected} messages")
    if count.value != expected:
        sys.exit("the sink did not receive every message")


if __name__ == "__main__":
    main()
