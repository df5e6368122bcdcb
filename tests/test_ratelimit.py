"""Rate limits: the pacing buckets (in process, and shared through the real Redis) and the
admission windows that turn away sign-up, login and preview floods."""

from __future__ import annotations

import threading
import time

import pytest

from clock_support import FakeClock
from paperalerts.edges.ratelimit import RedisTokenBucket, SlidingWindow, TokenBucket


def test_token_bucket_math() -> None:
    """2 msg/s, burst 1: sends are spaced 0.5 s; idle time refills at most `burst` tokens."""
    clock = FakeClock()
    bucket = TokenBucket(2.0, 1.0, clock=clock, sleep=clock.sleep)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.5, 1.0]
    clock.now += 10  # long idle: only one token saved up
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.5]
    burst = TokenBucket(2.0, 3.0, clock=clock, sleep=clock.sleep)
    assert [burst.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


@pytest.mark.redis
def test_redis_bucket_is_shared_across_limiters(redis_url: str) -> None:
    """Two limiters (as two processes would) on one Redis key share 20 msg/s: 20 acquisitions
    from two threads take about one second, never much less."""
    a = RedisTokenBucket(redis_url, 20.0, key="test:smtp-rate")
    b = RedisTokenBucket(redis_url, 20.0, key="test:smtp-rate")
    waits = [a.reserve(), b.reserve(), a.reserve()]
    assert waits[0] == 0.0 and waits[1] == pytest.approx(0.05, abs=0.01)
    assert waits[2] == pytest.approx(0.10, abs=0.01)
    time.sleep(0.2)  # pay back the reservations above
    start = time.monotonic()
    threads = [
        threading.Thread(target=lambda lim=lim: [lim.acquire() for _ in range(10)])
        for lim in (a, b)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert 0.85 <= elapsed < 6.0  # the floor is the claim; the ceiling only catches a hang
    a.close()
    b.close()


def test_sliding_window_counts_exactly_n_per_window() -> None:
    """At most `limit` hits per key in any `window` seconds: the next one is refused with the
    seconds until the oldest hit leaves the window, and a refusal is not counted."""
    w = SlidingWindow(3, 60.0)
    assert [w.hit("ip", t) for t in (0.0, 10.0, 20.0)] == [None, None, None]
    assert w.hit("ip", 30.0) == pytest.approx(30.0)  # the hit at 0 leaves at 60
    assert w.hit("ip", 59.0) == pytest.approx(1.0)
    assert w.hit("ip", 60.0) is None  # the window slid past the first hit
    assert w.hit("other", 60.0) is None  # keys are counted apart
    w.reset("ip")
    assert w.hit("ip", 61.0) is None


def test_sliding_window_forgets_the_least_recent_keys_beyond_its_bound() -> None:
    """A flood of distinct keys cannot grow memory past `max_keys`: the least recently used key
    is forgotten (and may start afresh), the recent ones keep their counts."""
    w = SlidingWindow(1, 60.0, max_keys=2)
    assert w.hit("a", 0.0) is None and w.hit("b", 1.0) is None
    assert w.hit("b", 2.0) is not None  # b is at its limit and now the most recent
    assert w.hit("c", 3.0) is None  # a, the least recently used, is forgotten
    assert w.hit("a", 4.0) is None  # so a starts afresh
    assert w.hit("c", 5.0) is not None


def test_a_zero_limit_refuses_everything_and_bad_arguments_are_refused() -> None:
    """limit 0 turns every hit away for a whole window; a negative limit or an empty window is a
    ValueError naming both values."""
    assert SlidingWindow(0, 10.0).hit("k", 0.0) == 10.0
    with pytest.raises(ValueError, match="got -1, 10"):
        SlidingWindow(-1, 10)
    with pytest.raises(ValueError, match="got 1, 0"):
        SlidingWindow(1, 0)
