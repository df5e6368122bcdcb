"""The Celery app's routing, against real brokers (Redis, RabbitMQ)."""

from __future__ import annotations

import time

import pytest

from conftest import REDIS_PORT, REDIS_SERVER, require_service
from paperalerts.edges.broker import QUEUES
from paperalerts.edges.config import Settings
from paperalerts.faces.tasks import make_celery

BROKERS = {
    "redis": (f"{REDIS_SERVER}/13", "Redis", REDIS_PORT),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", "RabbitMQ", 5672),
}


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_each_task_lands_in_exactly_its_own_queue(broker: str) -> None:
    """With every queue bound (as a running worker binds them), a task is published once, into
    its own queue only: scrapes to scrape, sends to mail, the tick to tick (a worker of its own
    serves it, issue 21), the rest to match."""
    url, name, port = BROKERS[broker]
    require_service(name, "127.0.0.1", port)
    app = make_celery(Settings(broker_url=url))
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        queues = [q(channel) for q in app.amqp.queues.values()]
        for q in queues:
            q.declare()
            q.purge()
        try:
            app.send_task("paperalerts.scrape_source", args=[1])
            app.send_task("paperalerts.send_delivery", args=[2])
            app.send_task("paperalerts.tick")
            app.send_task("paperalerts.match")
            time.sleep(0.5)  # RabbitMQ counts asynchronously
            counts = {q.name: q.queue_declare(passive=True).message_count for q in queues}
        finally:
            for q in queues:
                q.purge()
    app.close()
    assert set(QUEUES) == set(counts)
    assert counts == {"tick": 1, "scrape": 1, "match": 1, "mail": 1}
