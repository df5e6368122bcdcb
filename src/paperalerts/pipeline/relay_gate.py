"""The relay breaker at the send step: may this send go to the relay now, and what its result
says about the relay (`paperalerts.core.breaker` the policy, `edges.db.breaker` the shared row).

Reading the shared row before every message would cost a query a send; each process keeps the
last state it read or wrote for `TTL` seconds (a closed breaker is all a healthy relay ever
shows) and its own writes refresh it. So a breaker opened by another worker is seen within
`TTL`; the sends in between meet the same dead relay and are retried as before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.breaker import (
    Admission,
    Breaker,
    BreakerConfig,
    admit,
    failed,
    succeeded,
    take_probe,
)
from paperalerts.edges.db import breaker as store

TTL = 2.0  # seconds a process trusts what it last read


@dataclass(frozen=True)
class Gate:
    """The answer for one send: "send", "probe" (the one send let through to test the relay) or
    "wait" until `until`."""

    admission: Admission
    until: datetime | None = None


_cache: dict[str, tuple[Breaker, float]] = {}
_lock = threading.Lock()


def _key(factory: sessionmaker[Session]) -> str:
    bind = factory.kw.get("bind")
    engine = getattr(bind, "engine", bind)
    return str(getattr(engine, "url", id(factory)))


def _remember(factory: sessionmaker[Session], b: Breaker) -> Breaker:
    with _lock:
        _cache[_key(factory)] = (b, time.monotonic())
    return b


def current(factory: sessionmaker[Session]) -> Breaker:
    """The breaker as this process knows it (read again after `TTL`)."""
    with _lock:
        hit = _cache.get(_key(factory))
    if hit is not None and time.monotonic() - hit[1] < TTL:
        return hit[0]
    with factory() as s:
        return _remember(factory, store.read(s))


def forget() -> None:
    """Drop what this process remembers (tests that reuse a database URL)."""
    with _lock:
        _cache.clear()


def check(factory: sessionmaker[Session], cfg: BreakerConfig, now: datetime) -> Gate:
    """May a send go out now? Takes the probe when the pause is over (one sender gets it)."""
    if cfg.threshold <= 0:
        return Gate("send")
    b = current(factory)
    if admit(b, now) != "probe":
        return Gate(admit(b, now), b.open_until)

    def probe(x: Breaker) -> Breaker:
        return take_probe(x, now) if admit(x, now) == "probe" else x

    before, after = store.change(factory, probe)
    _remember(factory, after)
    if admit(before, now) == "probe":
        return Gate("probe")
    return Gate(admit(after, now), after.open_until)


def record(
    factory: sessionmaker[Session],
    cfg: BreakerConfig,
    now: datetime,
    *,
    accepted: bool,
    error: str = "",
) -> Breaker:
    """What a send's result says about the relay: an accepted message closes the breaker (a
    write only when it was not clean), a transient failure counts (`accepted` False)."""
    if cfg.threshold <= 0:
        return Breaker()
    if accepted:
        b = current(factory)
        if b.clean:
            return b
        return _remember(factory, store.change(factory, lambda _: succeeded())[1])
    return _remember(factory, store.change(factory, lambda x: failed(x, now, error, cfg))[1])
