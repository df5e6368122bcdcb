"""fetch.py against a real HTTP server on 127.0.0.1 whose replies each test scripts: bodies,
validators, retries and backoff, truncation, size cap, gzip, redirects, settings."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from conftest import fixture_file
from fetch_support import LocalServer, NoNetwork, Reply, make_fetcher, running
from paperalerts import __version__
from paperalerts.edges.config import Settings
from paperalerts.edges.fetch import USER_AGENT, Fetcher, parse_retry_after
from paperalerts.errors import ConfigError, PermanentFetchError, TransientFetchError

FEED = "arxiv_rss/arxiv_rss_cs.AI_2026-04-27_trimmed3.xml"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with running() as local:
        yield local


def test_200_returns_body_and_validators(server: LocalServer) -> None:
    """A 200 returns the exact bytes served, its ETag, Last-Modified and Content-Type."""
    feed = fixture_file(FEED).read_bytes()
    headers = {
        "ETag": '"v1"',
        "Last-Modified": "Mon, 27 Apr 2026 04:00:00 GMT",
        "Content-Type": "application/rss+xml",
    }
    server.route("/feed", Reply(200, headers, feed))
    with make_fetcher() as fetcher:
        result = fetcher.fetch(f"{server.base}/feed")
    assert result.body == feed
    assert (result.status, result.not_modified) == (200, False)
    assert result.etag == '"v1"'
    assert result.last_modified == "Mon, 27 Apr 2026 04:00:00 GMT"
    assert result.content_type == "application/rss+xml"
    assert result.url == f"{server.base}/feed"
    assert server.requests[0][1]["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith(f"paperalerts/{__version__} (+https://github.com/paperalerts/")


def test_conditional_get_gets_304_as_not_modified(server: LocalServer) -> None:
    """Validators go out as If-None-Match / If-Modified-Since; a 304 is "unchanged", body b""."""
    feed = fixture_file(FEED).read_bytes()
    lm = "Mon, 27 Apr 2026 04:00:00 GMT"

    def conditional(path: str, headers: dict[str, str]) -> Reply:
        if headers.get("If-None-Match") == '"v1"' and headers.get("If-Modified-Since") == lm:
            return Reply(304, {"ETag": '"v1"'})
        return Reply(200, {"ETag": '"v1"', "Last-Modified": lm}, feed)

    server.routes["/feed"] = conditional
    with make_fetcher() as fetcher:
        first = fetcher.fetch(f"{server.base}/feed")
        second = fetcher.fetch(
            f"{server.base}/feed", etag=first.etag, last_modified=first.last_modified
        )
    assert first.body == feed and not first.not_modified
    assert (second.status, second.not_modified, second.body) == (304, True, b"")
    assert (second.etag, second.last_modified) == ('"v1"', lm)  # kept: the 304 sent no L-M
    assert "If-None-Match" not in server.requests[0][1]


def test_429_waits_as_long_as_retry_after_says(server: LocalServer) -> None:
    """A 429 with Retry-After: 7 is retried after exactly 7 seconds (recorded, not slept)."""
    server.route("/feed", Reply(429, {"Retry-After": "7"}), Reply(200, body=b"ok"))
    sleeps: list[float] = []
    with make_fetcher(sleeps) as fetcher:
        result = fetcher.fetch(f"{server.base}/feed")
    assert result.body == b"ok"
    assert sleeps == [7.0]
    assert server.paths == ["/feed", "/feed"]


def test_retry_after_is_capped_by_max_retry_after(server: LocalServer) -> None:
    """A Retry-After of an hour waits only max_retry_after."""
    server.route("/feed", Reply(503, {"Retry-After": "3600"}), Reply(200, body=b"ok"))
    sleeps: list[float] = []
    with make_fetcher(sleeps, max_retry_after=5.0) as fetcher:
        assert fetcher.fetch(f"{server.base}/feed").body == b"ok"
    assert sleeps == [5.0]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),  # HTTP-date 30 s after `now`
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # in the past: no negative wait
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP-date relative to `now`; junk is None."""
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == seconds


def test_500_then_200_retries_with_jittered_backoff(server: LocalServer) -> None:
    """A 500 is retried after a full-jitter wait in [0, backoff]; the retry's 200 is returned."""
    server.route("/feed", Reply(500), Reply(200, body=b"ok"))
    sleeps: list[float] = []
    with make_fetcher(sleeps, backoff=0.5) as fetcher:
        assert fetcher.fetch(f"{server.base}/feed").body == b"ok"
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.5


def test_500_forever_gives_up_after_the_retries(server: LocalServer) -> None:
    """With retries=3, four 500s make a TransientFetchError(status=500); waits grow as 2**n caps."""
    server.route("/feed", Reply(500))
    sleeps: list[float] = []
    with (
        make_fetcher(sleeps, retries=3, backoff=0.5) as fetcher,
        pytest.raises(TransientFetchError) as caught,
    ):
        fetcher.fetch(f"{server.base}/feed")
    assert caught.value.status == 500
    assert caught.value.url == f"{server.base}/feed"
    assert server.paths == ["/feed"] * 4
    assert len(sleeps) == 3
    assert all(0.0 <= s <= 0.5 * 2**n for n, s in enumerate(sleeps))


def test_404_is_permanent_and_not_retried(server: LocalServer) -> None:
    """A 404 raises PermanentFetchError(status=404) after one request and no wait."""
    sleeps: list[float] = []
    with make_fetcher(sleeps) as fetcher, pytest.raises(PermanentFetchError) as caught:
        fetcher.fetch(f"{server.base}/missing")
    assert caught.value.status == 404
    assert server.paths == ["/missing"] and sleeps == []


def test_truncated_body_is_transient_and_retried(server: LocalServer) -> None:
    """Content-Length 1000 with 10 bytes then a close is retried; the complete retry is returned."""
    server.route("/feed", Reply(200, body=b"0123456789", length=1000), Reply(200, body=b"whole"))
    with make_fetcher() as fetcher:
        assert fetcher.fetch(f"{server.base}/feed").body == b"whole"
    assert server.paths == ["/feed", "/feed"]


def test_truncated_body_every_time_is_transient_error(server: LocalServer) -> None:
    """A body that is always cut short ends in TransientFetchError, never a short FetchResult."""
    server.route("/feed", Reply(200, body=b"0123456789", length=1000))
    with make_fetcher(retries=1) as fetcher, pytest.raises(TransientFetchError) as caught:
        fetcher.fetch(f"{server.base}/feed")
    assert "RemoteProtocolError" in str(caught.value)
    assert server.paths == ["/feed", "/feed"]


def test_read_timeout_is_transient(server: LocalServer) -> None:
    """A server slower than the timeout gives TransientFetchError (status None)."""
    server.route("/slow", Reply(200, body=b"late", delay=0.6))
    with (
        make_fetcher(timeout=0.2, retries=0) as fetcher,
        pytest.raises(TransientFetchError) as caught,
    ):
        fetcher.fetch(f"{server.base}/slow")
    assert caught.value.status is None
    assert "ReadTimeout" in str(caught.value)


def test_oversized_body_is_refused_by_content_length(server: LocalServer) -> None:
    """A declared Content-Length over max_bytes is refused as permanent."""
    server.route("/big", Reply(200, body=b"x" * 101))
    with make_fetcher(max_bytes=100) as fetcher, pytest.raises(PermanentFetchError) as caught:
        fetcher.fetch(f"{server.base}/big")
    assert str(caught.value) == "response larger than 100 bytes"


def test_oversized_body_is_refused_while_streaming(server: LocalServer) -> None:
    """With no Content-Length, the stream is cut as soon as it passes max_bytes."""
    server.route("/big", Reply(200, body=b"x" * 5000, length=None))
    with make_fetcher(max_bytes=100) as fetcher, pytest.raises(PermanentFetchError) as caught:
        fetcher.fetch(f"{server.base}/big")
    assert "larger than 100 bytes" in str(caught.value)


def test_gzip_is_decoded_and_the_cap_counts_decoded_bytes(server: LocalServer) -> None:
    """A gzip body comes back decoded; a small gzip that inflates past max_bytes is refused."""
    feed = fixture_file(FEED).read_bytes()
    bomb = gzip.compress(b"\0" * 100_000)
    server.route("/feed", Reply(200, {"Content-Encoding": "gzip"}, gzip.compress(feed)))
    server.route("/bomb", Reply(200, {"Content-Encoding": "gzip"}, bomb))
    with make_fetcher(max_bytes=len(feed)) as fetcher:
        assert fetcher.fetch(f"{server.base}/feed").body == feed
        assert len(bomb) < len(feed)
        with pytest.raises(PermanentFetchError, match="larger than"):
            fetcher.fetch(f"{server.base}/bomb")


def test_redirects_are_followed_and_the_final_url_returned(server: LocalServer) -> None:
    """A relative 301 then a 302 lead to the 200, whose URL is reported."""
    server.route("/a", Reply(301, {"Location": "/b"}))
    server.route("/b", Reply(302, {"Location": f"{server.base}/feed"}))
    server.route("/feed", Reply(200, body=b"ok"))
    with make_fetcher() as fetcher:
        result = fetcher.fetch(f"{server.base}/a")
    assert (result.url, result.body) == (f"{server.base}/feed", b"ok")
    assert server.paths == ["/a", "/b", "/feed"]


def test_redirect_loop_is_permanent(server: LocalServer) -> None:
    """More than five redirects raise PermanentFetchError after six requests."""
    server.route("/loop", Reply(302, {"Location": "/loop"}))
    with make_fetcher() as fetcher, pytest.raises(PermanentFetchError, match="redirects"):
        fetcher.fetch(f"{server.base}/loop")
    assert len(server.requests) == 6


def test_from_settings_uses_fetch_settings() -> None:
    """from_settings reads the fetch_* fields and allow_private_urls."""
    settings = Settings(fetch_retries=5, fetch_max_bytes=123, allow_private_urls=True)
    with Fetcher.from_settings(settings, transport=NoNetwork()) as fetcher:
        assert (fetcher.retries, fetcher.max_bytes, fetcher.allow_private) == (5, 123, True)


def test_bad_options_are_a_config_error() -> None:
    """A negative retry count is refused with a message naming it."""
    with pytest.raises(ConfigError, match="retries=-1"):
        make_fetcher(retries=-1)
