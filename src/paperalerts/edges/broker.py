"""Looking into the broker from outside Celery: queue depths, and the embedded broker's upkeep.

The broker only carries wake-ups (the database holds all state), so what is waiting in it is an
operator's gauge, not state: `queue_depths` reports how many messages wait in each queue, for
Redis (the length of the queue's list, priority sub-lists included) and for the embedded broker
(kombu's SQLAlchemy transport: its visible rows). Any other broker reports None ("n/a").

`embedded_broker_url` is the broker a laptop install uses when BROKER_URL is unset; it lives
here, not with the Celery app, so reading it (web /metrics, `status`) never builds that app.

kombu's SQLAlchemy transport keeps every message it has handed out, marked invisible, forever;
`prune_consumed` deletes those. That is safe at any time: a consumer holds its message in memory
once it has it, acknowledging touches no row, and an unacknowledged message given back on a warm
shutdown is written as a new row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from paperalerts.edges.config import Settings

# "tick" carries only the scheduler's tick (which runs the sweep): a worker of its own consumes it,
# so long scrapes, matching or mail never make the tick wait (issue 21).
QUEUES: Final = ("tick", "scrape", "match", "mail")
WORK_QUEUES: Final = ("scrape", "match", "mail")
# kombu's Redis transport keeps a queue's prioritised messages in lists named
# "<queue>\x06\x16<priority>" for these steps (priority 0 is the queue's own name).
_REDIS_PRIORITY_SEP: Final = "\x06\x16"
_REDIS_PRIORITY_STEPS: Final = (0, 3, 6, 9)


@dataclass(frozen=True)
class QueueDepths:
    """Messages waiting per queue (None where the broker cannot tell), and why not, if so."""

    kind: str  # redis / embedded / other
    depths: dict[str, int | None] = field(default_factory=dict)
    error: str | None = None


def broker_kind(url: str) -> str:
    """``redis`` (redis:// rediss://), ``embedded`` (kombu's SQLAlchemy transport) or ``other``."""
    if url.startswith(("redis://", "rediss://", "redis+socket://")):
        return "redis"
    if url.startswith(("sqla+", "sqlalchemy+")):
        return "embedded"
    return "other"


def _sqla_url(url: str) -> str:
    return url.split("+", 1)[1]


def _sqlite_file_missing(db_url: str) -> bool:
    """True for a SQLite URL whose file does not exist yet (opening it would create it)."""
    u = make_url(db_url)
    return (
        u.get_backend_name() == "sqlite" and bool(u.database) and not Path(str(u.database)).exists()
    )


def queue_depths(url: str, queues: tuple[str, ...] = QUEUES) -> QueueDepths:
    """How many messages wait in each of `queues` on the broker at `url`. Never raises: an
    unreachable broker gives None depths and the error text."""
    kind = broker_kind(url)
    unknown: dict[str, int | None] = dict.fromkeys(queues)
    try:
        if kind == "redis":
            return QueueDepths(kind, _redis_depths(url, queues))
        if kind == "embedded":
            return QueueDepths(kind, _embedded_depths(_sqla_url(url), queues))
    except Exception as e:  # an operator's gauge: report the problem, do not fail the caller
        return QueueDepths(kind, unknown, f"{type(e).__name__}: {e}")
    return QueueDepths(kind, unknown)


def _redis_depths(url: str, queues: tuple[str, ...]) -> dict[str, int | None]:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        out: dict[str, int | None] = {}
        for q in queues:
            names = [q] + [f"{q}{_REDIS_PRIORITY_SEP}{p}" for p in _REDIS_PRIORITY_STEPS if p]
            pipe = client.pipeline()
            for name in names:
                pipe.llen(name)
            out[q] = sum(int(n) for n in pipe.execute())
        return out
    finally:
        client.close()


def _embedded_depths(db_url: str, queues: tuple[str, ...]) -> dict[str, int | None]:
    out: dict[str, int | None] = dict.fromkeys(queues, 0)
    if _sqlite_file_missing(db_url):
        return out  # nothing was ever sent
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            tables = (
                set(
                    conn.execute(
                        text("SELECT name FROM sqlite_master WHERE type='table'")
                    ).scalars()
                )
                if engine.dialect.name == "sqlite"
                else {"kombu_queue", "kombu_message"}
            )
            if not {"kombu_queue", "kombu_message"} <= tables:
                return out
            rows = conn.execute(
                text(
                    "SELECT q.name, COUNT(m.id) FROM kombu_queue q JOIN kombu_message m"
                    " ON m.queue_id = q.id WHERE m.visible = :yes GROUP BY q.name"
                ),
                {"yes": True},
            )
            for name, count in rows:
                if name in out:
                    out[name] = int(count)
        return out
    finally:
        engine.dispose()


def prune_consumed(url: str) -> int:
    """Delete the messages the embedded broker has already handed out; returns how many. Does
    nothing (0) for other brokers or an embedded broker that was never used."""
    if broker_kind(url) != "embedded":
        return 0
    db_url = _sqla_url(url)
    if _sqlite_file_missing(db_url):
        return 0
    engine = create_engine(db_url, connect_args={"timeout": 30} if "sqlite" in db_url else {})
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                found = conn.execute(
                    text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='kombu_message'")
                ).first()
                if found is None:
                    return 0
            result = conn.execute(
                text("DELETE FROM kombu_message WHERE visible = :no"), {"no": False}
            )
            return int(result.rowcount or 0)
    finally:
        engine.dispose()


def embedded_broker_url(database_url: str) -> str:
    """The broker used when BROKER_URL is unset: kombu's SQLAlchemy transport on a SQLite file
    beside the database, so a laptop install needs no broker server and a restart loses nothing."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        path = Path(database_url.removeprefix("sqlite:///")).resolve()
        return f"sqla+sqlite:///{path.with_name(path.stem + '-broker.db')}"
    return "sqla+sqlite:///" + str(Path("paperalerts-broker.db").resolve())


def configured_broker_url(settings: Settings) -> str:
    """The broker the Celery app uses: BROKER_URL, else the embedded one."""
    return settings.broker_url or embedded_broker_url(settings.database_url)
