"""Stopping a worker in the middle of a send batch (issue 19): the stop waits for the message in
flight only, and the rest of the batch is released at once (queued again, due now, back on the
broker), never held by leases of a dead worker nor sent past the stop's grace period. Real
Celery worker processes on Redis and PostgreSQL, a real SMTP sink that takes its time."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from paperalerts.edges.db import models as m
from paperalerts.pipeline import dispatch_due_digests
from test_delivery_faults import populate, statuses, wait_for, wall, world

pytestmark = pytest.mark.slow
__all__ = ["world"]  # the fixture, shared with the fault test

SEND_SECONDS = 1.5  # each message's DATA takes this long at the sink


def _message_ids(sink: Any) -> Counter[str]:
    return Counter(
        str(email.message_from_bytes(r.data, policy=email.policy.default)["Message-ID"])
        for r in list(sink.messages)
    )


def test_sigterm_mid_batch_sends_the_message_in_flight_and_releases_the_rest(
    world: dict[str, Any],
) -> None:
    """SIGTERM to a worker two messages into a 14-message batch (~20 s of sending): it exits
    within a few seconds, nothing is left `sending` under a lease, what it did not send is
    queued and due, and a new worker sends exactly those, each once (no Message-ID twice)."""
    db, sink, workers, client = world["db"], world["sink"], world["workers"], world["client"]
    populate(db, 14)
    ids = dispatch_due_digests(db, world["cfg"], now=wall())
    assert len(ids) >= 10
    sink.slow_data(SEND_SECONDS)
    workers.start(1, concurrency=1)
    client.send_task("paperalerts.send_deliveries", args=[ids])
    wait_for(lambda: len(sink.messages) >= 2, 60, "two messages of the batch sent")
    worker = workers.procs[0]
    stopped_at = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)  # as `docker stop` and `paperalerts run` do
    worker.wait(timeout=60)
    took = time.monotonic() - stopped_at
    assert took < 8, f"the stop took {took:.1f}s: the batch was not cut short"
    workers.procs = []

    sent_before = len(sink.messages)
    counts = statuses(db)
    assert counts["sending"] == 0, counts
    assert counts["sent"] == sent_before < len(ids)
    with db() as s:
        left = list(s.execute(select(m.Delivery.attempts, m.Delivery.lease_until)
                              .where(m.Delivery.status == "queued")))
    assert len(left) == len(ids) - sent_before
    assert all(lease is None and attempts == 0 for attempts, lease in left)

    sink.slow_data(0)
    workers.start(1, concurrency=1)  # the released rows were handed out again at the stop
    wait_for(lambda: statuses(db)["sent"] == len(ids), 90, "the released rows sent")
    assert sum(_message_ids(sink).values()) == len(ids) == len(_message_ids(sink))
