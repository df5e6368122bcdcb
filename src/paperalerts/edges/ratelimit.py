"""Rate limits, of two kinds that answer different questions.

Pacing (`TokenBucket`, `RedisTokenBucket`): "when may the next SMTP message go?". The caller
waits; a token bucket keeps a relay's messages-per-second limit while allowing a small burst, per
process or shared by every process through Redis. `reserve_many(n)` books n consecutive sends at
once (a send batch books its chunk before claiming it, so its waits happen before its leases
start). When Redis cannot be reached the shared bucket degrades to a per-process one (logged once
per outage, Redis tried again every few seconds): sending slows or speeds a little, never stops.

Admission (`SlidingWindow`): "may this key (an IP, an address, a subscriber) do this again now?".
The caller refuses (429 with Retry-After); a sliding window counts exactly "at most N in any
hour", which a bucket refilling continuously does not. Kept in process memory: behind several web
workers each keeps its own window, so the effective limit is the setting times the number of
workers; that bounds abuse, which is what these limits are for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, Protocol

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS: Final = 5.0  # how long the fallback bucket serves before Redis is tried again


class RateLimiter(Protocol):
    rate: float

    def acquire(self) -> None: ...

    def reserve_many(self, n: int) -> list[float]: ...


class _Bucket:
    """`rate` tokens per second, at most `burst` saved up. Each send reserves a token; the bucket
    may go negative, which is the wait owed (callers queue fairly instead of polling)."""

    def __init__(self, rate: float, burst: float, sleep: Callable[[float], None]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst, self._sleep = rate, burst, sleep

    def reserve(self) -> float:
        """Take a token; return how long to wait (seconds) before using it."""
        return self.reserve_many(1)[0]

    def reserve_many(self, n: int) -> list[float]:
        """Take `n` tokens at once (consecutive: no other caller's token falls between them);
        return how long to wait before using each, in order."""
        raise NotImplementedError

    def acquire(self) -> None:
        """Wait until the next send is allowed."""
        if (wait := self.reserve()) > 0:
            self._sleep(wait)


class TokenBucket(_Bucket):
    """An in-process bucket; `clock` and `sleep` are injectable for tests."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate, burst, sleep)
        self._clock = clock
        self._tokens, self._at = burst, clock()
        self._lock = threading.Lock()

    def reserve_many(self, n: int) -> list[float]:
        with self._lock:
            now = self._clock()
            before = min(self.burst, self._tokens + max(now - self._at, 0.0) * self.rate)
            self._tokens, self._at = before - n, now
            return _waits(before, n, self.rate)


def _waits(before: float, n: int, rate: float) -> list[float]:
    """Waits for the 1st..nth of `n` tokens taken from a bucket holding `before` tokens."""
    return [max(i - before, 0.0) / rate for i in range(1, n + 1)]


# The same reservation as TokenBucket.reserve_many, atomically in Redis on Redis's clock, so every
# process sending through one relay shares one bucket. Returns the tokens there were before this
# reservation took its ARGV[3], as text (Lua numbers would be truncated to integers on the way out).
_RESERVE_LUA: Final = """
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
local before = math.min(burst, tokens + math.max(now - at, 0) * rate)
tokens = before - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(before)
"""


class RedisTokenBucket(_Bucket):
    """A bucket shared by every process through Redis (one key per relay). While Redis cannot
    be reached it paces with a per-process bucket of the same rate instead (so with N processes
    the relay may see up to N times the rate for the outage; its 4xx replies are retried), logs
    that once, and tries Redis again every `retry_after` seconds."""

    def __init__(
        self,
        redis_url: str,
        rate: float,
        burst: float = 1.0,
        *,
        key: str = "paperalerts:smtp-rate",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = REDIS_RETRY_SECONDS,
    ) -> None:
        import redis  # only the Redis-shared limiter needs the client

        super().__init__(rate, burst, sleep)
        self.key = key
        # Short socket timeouts: a hung Redis must cost a send seconds, not the lease.
        self._client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_RESERVE_LUA)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._local = TokenBucket(rate, burst, clock=clock, sleep=sleep)
        self._clock, self._retry_after = clock, retry_after
        self._down_until: float | None = None  # while set, the local bucket paces

    @property
    def degraded(self) -> bool:
        """True while the per-process fallback paces (Redis was unreachable)."""
        return self._down_until is not None

    def reserve_many(self, n: int) -> list[float]:
        if self._down_until is not None and self._clock() < self._down_until:
            return self._local.reserve_many(n)
        try:
            before = float(self._script(keys=[self.key], args=[self.rate, self.burst, n]))
        except self._errors as e:
            if self._down_until is None:
                log.warning(
                    "shared send-rate bucket unreachable (%s: %s); pacing this process alone "
                    "at %g msg/s until Redis answers again", type(e).__name__, e, self.rate
                )
            self._down_until = self._clock() + self._retry_after
            return self._local.reserve_many(n)
        if self._down_until is not None:
            log.warning("shared send-rate bucket reachable again; pacing through Redis")
            self._down_until = None
        return _waits(before, n, self.rate)

    def close(self) -> None:
        self._client.close()


class SlidingWindow:
    """At most `limit` events per key in any `window` seconds. Remembers at most `max_keys`
    keys (least recently used are forgotten), so a flood of distinct keys cannot exhaust memory."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        if limit < 0 or window <= 0:
            raise ValueError(f"limit must be >= 0 and window > 0, got {limit}, {window}")
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> float | None:
        """Record an event for `key` at `now` (seconds) if allowed and return None; when the
        limit is reached, record nothing and return the seconds until the next one is allowed."""
        with self._lock:
            events = self._events.pop(key, None) or deque()
            while events and events[0] <= now - self.window:
                events.popleft()
            self._events[key] = events
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
            if len(events) >= self.limit:
                return max(events[0] + self.window - now, 0.0) if events else self.window
            events.append(now)
            return None

    def reset(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)
