"""The Celery app: thin tasks that call pipeline steps, and the beat schedule.

Every task takes ids (JSON), claims its rows in the database and is idempotent, so `acks_late`
with `reject_on_worker_lost` is safe: a message redelivered after a worker died finds its work
done or claimable. The broker only carries wake-ups; the tick's sweep re-enqueues what a lost
message or a dead worker left behind, so no task ever needs an ETA or a countdown.

Queues: ``tick`` (the scheduler's tick and its sweep, nothing long: give it a worker of its own,
so long tasks never starve the tick), ``scrape`` (fetching), ``match`` (matching,
recommendations, dispatch), ``mail`` (SMTP sends, prefetch 1 so one slow relay never hoards
messages). Run exactly one beat.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown, worker_shutting_down
from kombu.entity import Exchange, Queue
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.broker import QUEUES, configured_broker_url, prune_consumed
from paperalerts.edges.config import Settings, get_settings
from paperalerts.edges.db import make_engine, session_factory
from paperalerts.edges.db.health_repo import record_heartbeat
from paperalerts.edges.fetch import Fetcher
from paperalerts.edges.mailer import Mailer, mailer_from_settings
from paperalerts.faces.step_config import delivery_config, health_config, task_limits
from paperalerts.pipeline import (
    DeliveryConfig,
    IndexCache,
    claim_due_sources,
    dispatch_due_digests,
    match_new_events,
    scrape_source,
    send_delivery,
    sweep,
)
from paperalerts.pipeline.health import check_health
from paperalerts.pipeline.recommend import train_recommendations
from paperalerts.pipeline.scrape import record_failed_scrape
from paperalerts.pipeline.send_batch import send_deliveries

log = logging.getLogger(__name__)

SEND_CHUNK = 50  # deliveries per send task

# Longer than any task runs; the sweep, not the broker, recovers lost work much sooner.
VISIBILITY_TIMEOUT = 3600


def make_celery(settings: Settings) -> Celery:
    broker = configured_broker_url(settings)
    # kombu's SQLAlchemy transport hands every transport option to create_engine(), which
    # refuses visibility_timeout; it needs none (messages are taken in one transaction).
    transport = {} if broker.startswith("sqla+") else {"visibility_timeout": VISIBILITY_TIMEOUT}
    app = Celery("paperalerts", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue="match",
        # Each queue its own direct exchange and key, so the declared bindings (and the worker's
        # banner) say what routing does; Queue(name) alone is bound to the default exchange/key.
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        task_routes={
            "paperalerts.tick": {"queue": "tick"},
            "paperalerts.scrape_source": {"queue": "scrape"},
            "paperalerts.send_delivery": {"queue": "mail"},
            "paperalerts.send_deliveries": {"queue": "mail"},
        },
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        beat_schedule={"tick": {"task": "paperalerts.tick", "schedule": settings.tick_seconds}},
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
        # Scrape and send tasks end in bounded time (limits derived from the settings that bound
        # their work, so legitimate work is never cut; see step_config.TaskLimits).
        task_annotations=task_limits(settings).annotations(),
    )
    return app


@dataclass
class _Edges:
    """One worker process's long-lived edges: engine, mailer (one reused SMTP connection), the
    compiled rules cache. Built on first use, closed when the process ends."""

    settings: Settings
    factory: sessionmaker[Session]
    mailer: Mailer
    cache: IndexCache
    delivery: DeliveryConfig


_edges: _Edges | None = None
_lock = threading.Lock()


def edges() -> _Edges:
    global _edges
    with _lock:
        if _edges is None:
            s = get_settings()
            _edges = _Edges(
                s,
                session_factory(make_engine(s.database_url)),
                mailer_from_settings(s),
                IndexCache(),
                delivery_config(s),
            )
        return _edges


# Set by the worker's main process when a stop (SIGTERM, Ctrl-C) begins; read by its pool
# processes, forked after this was made, so they share its memory. A send batch then stops after
# the message in flight and releases the rest, instead of outliving the stop's grace period.
_stopping = multiprocessing.RawValue("b", 0)


@worker_shutting_down.connect
def _on_worker_stop(**_: Any) -> None:
    _stopping.value = 1


def worker_stopping() -> bool:
    """Whether this worker is shutting down (the send batch's stop hook)."""
    return bool(_stopping.value)


@worker_process_shutdown.connect
def _close_edges(**_: Any) -> None:
    global _edges
    if _edges is not None:
        _edges.mailer.close()
        _edges = None


def now() -> datetime:
    return datetime.now(UTC)


app = make_celery(get_settings())


@app.task(name="paperalerts.tick")
def beat_fanout() -> dict[str, int]:
    """What beat sends every TICK_SECONDS (task name ``paperalerts.tick``, kept for messages in
    flight): record the heartbeat, enqueue due scrapes, matching, due digests and the sweep's
    leftovers, check health."""
    e = edges()
    # Each step reads the clock itself: enqueueing can be slow when the broker is.
    record_heartbeat(e.factory, now())
    due = claim_due_sources(e.factory, now())
    for sid in due:
        scrape.delay(sid)
    match.delay()
    dispatch.delay()
    if e.settings.mailbox_url:
        mailbox.delay()
    stuck = sweep(e.factory, e.delivery, now=now())
    hand_out(stuck)
    try:  # operator health: failing sources, and the scheduler back after an outage
        check_health(e.factory, e.mailer, health_config(e.settings), now())
        prune_consumed(str(app.conf.broker_url))  # the embedded broker keeps what it handed out
    except Exception:  # health must never stop the fan-out
        log.exception("health check failed")
    return {"scrapes": len(due), "swept": len(stuck)}


@app.task(name="paperalerts.poll_mailbox")
def mailbox() -> int:
    """Apply the mailbox's unsubscribe requests, bounces and complaints (one at a time: the
    ledger makes a second concurrent poll count nothing twice)."""
    from paperalerts.faces.cli_mailbox import configured_mailbox
    from paperalerts.pipeline.mailbox import poll_mailbox

    e = edges()
    with configured_mailbox(e.settings) as box:
        return 0 if box is None else poll_mailbox(e.factory, box[0], box[1], now=now()).read


@app.task(name="paperalerts.scrape_source")
def scrape(source_id: int) -> str:
    e = edges()
    try:
        with Fetcher.from_settings(e.settings) as fetcher:
            o = scrape_source(
                e.factory, source_id, fetcher=fetcher, now=now(),
                failing_after=e.settings.failing_after,
            )
    except SoftTimeLimitExceeded:  # its transaction rolled back; the source says what happened
        limit = task_limits(e.settings).scrape_soft
        reason = f"time limit: the scrape took longer than {limit:g} s"
        return record_failed_scrape(e.factory, source_id, now=now(), reason=reason,
                                    failing_after=e.settings.failing_after).status
    if o.events:
        match.delay()
    return o.status


@app.task(name="paperalerts.match")
def match() -> int:
    e = edges()
    out = match_new_events(e.factory, now=now(), cache=e.cache)
    if out.events:
        recommend.delay()  # new papers: new candidates; it wakes dispatch when done
    return out.matches


@app.task(name="paperalerts.recommend")
def recommend() -> int:
    """Train every engaged subscriber's recommendations in bulk (after matching, so before the
    digests that show them are dispatched), then wake dispatch."""
    e = edges()
    try:
        out = train_recommendations(e.factory, e.delivery.recommend(), now=now())
    finally:  # the digests go out with or without their suggestions
        dispatch.delay()
    return out.rows


@app.task(name="paperalerts.dispatch")
def dispatch() -> int:
    e = edges()
    # Each committed chunk of digests goes out at once: sending starts while dispatch goes on.
    ids = dispatch_due_digests(e.factory, e.delivery, now=now(), on_created=hand_out)
    return len(ids)


def hand_out(ids: list[int]) -> None:
    """Enqueue sends for `ids`, SEND_CHUNK to a task: one task, one DB connection and one SMTP
    connection carry many small emails (a task per email spends more on Celery than on mail)."""
    for lo in range(0, len(ids), SEND_CHUNK):
        send_many.delay(ids[lo : lo + SEND_CHUNK])


@app.task(name="paperalerts.send_delivery")
def send(delivery_id: int) -> str:
    e = edges()
    return send_delivery(
        e.factory, delivery_id, mailer=e.mailer, cfg=e.delivery, clock=now
    ).status


@app.task(name="paperalerts.send_deliveries")
def send_many(delivery_ids: list[int]) -> dict[str, int]:
    """Send a chunk of deliveries (claimed a few at a time, each fenced); outcomes by status."""
    e = edges()
    # Past its budget the batch hands the rest back, as on a worker stop: done before the limit.
    ends = time.monotonic() + task_limits(e.settings).send_batch_budget

    def stop() -> bool:
        return worker_stopping() or time.monotonic() > ends

    outs = send_deliveries(
        e.factory, delivery_ids, mailer=e.mailer, cfg=e.delivery, clock=now, stop=stop
    )
    # Released by a stop: on the broker again at once, for a worker that is not stopping.
    hand_out([o.delivery_id for o in outs if o.status == "released"])
    counts: dict[str, int] = {}
    for o in outs:
        counts[o.status] = counts.get(o.status, 0) + 1
    return counts
