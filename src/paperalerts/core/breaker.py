"""The relay's circuit breaker, pure: a state value and its transitions (`now` passed in).

While the SMTP relay refuses everything (down, unreachable, answering 4xx to every message),
trying each delivery in turn only spends its attempts and its backoff. So transient failures in
a row are counted across all senders; at `threshold` the breaker *opens*: sending pauses for
`first_pause`, then one sender is let through as a *probe*. A probe that is accepted closes the
breaker (everything waiting goes out at the sweep); one that fails reopens it for twice the
pause, up to `max_pause`. Any accepted message closes it. (listmonk's "error threshold" pauses a
campaign the same way; here it resumes by itself.)::

    closed ──(threshold transient failures in a row)──► open ──(pause over)──► probing
      ▲                                                   ▲                      │
      └────────────────── a send accepted ◄───────────────┼──────────────────────┤
                                                          └── probe failed: pause × 2 ◄┘

Permanent failures (5xx) neither count nor close: the relay answered, the message or address
was at fault.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Admission = Literal["send", "probe", "wait"]


@dataclass(frozen=True)
class BreakerConfig:
    """`threshold` failures in a row open the breaker (0: it never opens)."""

    threshold: int = 10
    first_pause: timedelta = timedelta(seconds=30)
    max_pause: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Breaker:
    """The shared state: failures in a row; while open, until when sending pauses, since when
    (the outage's start), the current pause, whether a probe is out, the last error seen."""

    failures: int = 0
    open_until: datetime | None = None
    opened_at: datetime | None = None
    pause_seconds: float = 0.0
    probing: bool = False
    last_error: str = ""

    @property
    def is_open(self) -> bool:
        return self.open_until is not None

    @property
    def clean(self) -> bool:
        """Closed with nothing counted: a success changes nothing."""
        return self.failures == 0 and self.open_until is None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("open_until", "opened_at"):
            d[k] = None if d[k] is None else d[k].isoformat()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Breaker:
        """The stored form back; an unreadable record reads as a closed breaker."""
        try:
            return cls(
                failures=int(d.get("failures", 0)),
                open_until=_time(d.get("open_until")),
                opened_at=_time(d.get("opened_at")),
                pause_seconds=float(d.get("pause_seconds", 0.0)),
                probing=bool(d.get("probing", False)),
                last_error=str(d.get("last_error", "")),
            )
        except (TypeError, ValueError):
            return cls()


def _time(v: object) -> datetime | None:
    return None if v is None else datetime.fromisoformat(str(v))


def admit(b: Breaker, now: datetime) -> Admission:
    """"send" while closed; "wait" while open and paused; "probe" once the pause is over (the
    caller takes the probe with `take_probe`, so only one sender probes)."""
    if b.open_until is None:
        return "send"
    return "wait" if now < b.open_until else "probe"


def take_probe(b: Breaker, now: datetime) -> Breaker:
    """The probe is out: the others keep waiting one more pause (if the prober dies, the next
    sender after that probes)."""
    return replace(b, open_until=now + timedelta(seconds=b.pause_seconds), probing=True)


def failed(b: Breaker, now: datetime, error: str, cfg: BreakerConfig) -> Breaker:
    """A transient failure: counted; at the threshold the breaker opens; a failed probe
    doubles the pause. A failure of a send already in flight when it opened changes only the
    count."""
    n = b.failures + 1
    if cfg.threshold <= 0:
        return replace(b, failures=n, last_error=error)
    if b.is_open and b.probing:
        pause = min(b.pause_seconds * 2, cfg.max_pause.total_seconds())
        until = now + timedelta(seconds=pause)
        return replace(
            b, failures=n, open_until=until, pause_seconds=pause, probing=False, last_error=error
        )
    if b.is_open or n < cfg.threshold:
        return replace(b, failures=n, last_error=error)
    first = min(cfg.first_pause, cfg.max_pause)
    return Breaker(n, now + first, now, first.total_seconds(), False, error)


def succeeded() -> Breaker:
    """A message was accepted: closed, count cleared."""
    return Breaker()
