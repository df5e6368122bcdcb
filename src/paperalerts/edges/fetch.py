"""The only HTTP code: GET a source's URL safely and politely, and say what came back.

Contract of `Fetcher.fetch(url, etag=..., last_modified=...)`:

- returns a `FetchResult` for a 2xx (body read in full) or a 304 (``not_modified=True``, empty
  body: "unchanged", never "empty");
- retries connection errors, timeouts, truncated bodies, 429 and 5xx with exponential backoff and
  full jitter, honouring ``Retry-After`` (capped at ``max_retry_after``), then raises
  `TransientFetchError`;
- raises `PermanentFetchError` at once for any other 4xx, a non-http(s) URL, a host that resolves
  to a non-public address (unless ``allow_private``), more than `MAX_REDIRECTS` redirects, or a
  decoded body over ``max_bytes``;
- never takes longer than ``deadline`` seconds in all (attempts, redirects and waits included):
  ``timeout`` bounds each connect and each read, but a server dripping a byte a second resets it
  forever, so a watchdog shuts the attempt's sockets when the deadline passes, and the fetch
  raises `TransientFetchError` saying so.

Redirects are followed by hand so every hop passes the same checks before a connection is opened.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpx

from paperalerts import __version__
from paperalerts.errors import ConfigError, PermanentFetchError, TransientFetchError

if TYPE_CHECKING:
    from paperalerts.edges.config import Settings

USER_AGENT = f"paperalerts/{__version__} (+https://github.com/paperalerts/paperalerts)"
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Sequence[str]]
"""hostname -> the IP addresses (as text) it resolves to; raises OSError when it cannot."""


@dataclass(frozen=True)
class FetchResult:
    """What one fetch returned.

    `url` is the final URL after redirects. On a 304, `body` is ``b""`` and `etag`/`last_modified`
    are the server's new validators, or the ones sent when it gave none, so a caller can store them
    unconditionally. `elapsed` is wall-clock seconds for the whole call, retries and waits included.
    """

    url: str
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None
    not_modified: bool
    content_type: str | None
    elapsed: float


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is globally routable: not loopback, private, shared (100.64/10), link-local,
    multicast, reserved or unspecified. IPv4 addresses embedded in IPv6 (``::ffff:a.b.c.d``, 6to4
    ``2002::/16``) are judged by the IPv4 address they carry."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return is_public_address(embedded)
    # is_global alone lets multicast (224/4, ff00::/8) through, hence the explicit list.
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
    )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date), never negative;
    None when absent or unreadable (the caller then falls back to its own backoff)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def system_resolver(host: str) -> list[str]:
    """Every address `host` resolves to, via the system resolver."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


class _Retry(Exception):
    """An attempt failed in a way that trying again may fix."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class _Watchdog:
    """Shuts every socket an attempt opens once `remaining` seconds have passed, so a read that
    a dripping server keeps alive ends at the deadline. The sockets come from httpcore's
    ``trace`` request extension (the TCP stream each connection makes)."""

    def __init__(self, remaining: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(remaining, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, object]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if get_extra_info is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.fired:
                    _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes a recv() blocked in another thread (close() alone would not); OSError:
    # httpx closed it already, nothing left to cut.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _checked_url(raw: str | httpx.URL) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise PermanentFetchError(f"invalid URL: {exc}", url=str(raw)) from exc
    if url.scheme not in ("http", "https"):
        raise PermanentFetchError(
            f"refused scheme {url.scheme!r}: only http and https are fetched", url=str(raw)
        )
    if not url.host:
        raise PermanentFetchError("URL has no host", url=str(raw))
    return url


class Fetcher:
    """GETs URLs under the contract in the module docstring. Owns one `httpx.Client`; close it with
    `close()` or a ``with`` block. `transport`, `sleep` and `resolver` are seams for tests."""

    def __init__(
        self,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_bytes: int,
        max_retry_after: float,
        allow_private: bool,
        deadline: float = 90.0,
        user_agent: str = USER_AGENT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        resolver: Resolver = system_resolver,
    ) -> None:
        if min(timeout, max_bytes, deadline) <= 0 or min(retries, backoff, max_retry_after) < 0:
            raise ConfigError(
                f"fetch options out of range: timeout={timeout}, max_bytes={max_bytes}, "
                f"deadline={deadline} must be positive; retries={retries}, backoff={backoff}, "
                f"max_retry_after={max_retry_after} must not be negative"
            )
        self.deadline = deadline
        self.retries = retries
        self.backoff = backoff
        self.max_bytes = max_bytes
        self.max_retry_after = max_retry_after
        self.allow_private = allow_private
        self._sleep = sleep
        self._resolver = resolver
        # No keep-alive: requests are pinned to an IP (see _request), and a pooled TLS connection
        # verified for one hostname must not carry another hostname's request to the same IP. A
        # scraper fetching each source every few minutes gains nothing from keep-alive anyway.
        self._client = httpx.Client(
            transport=transport
            or httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0)),
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
            trust_env=False,  # proxies/netrc from the environment would bypass the address pinning
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        resolver: Resolver = system_resolver,
    ) -> Fetcher:
        """A fetcher configured from `settings` (``fetch_*`` and ``allow_private_urls``)."""
        return cls(
            timeout=settings.fetch_timeout,
            retries=settings.fetch_retries,
            backoff=settings.fetch_backoff,
            max_bytes=settings.fetch_max_bytes,
            max_retry_after=settings.fetch_max_retry_after,
            allow_private=settings.allow_private_urls,
            deadline=settings.fetch_deadline,
            transport=transport,
            sleep=sleep,
            resolver=resolver,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET `url`, conditionally when validators are given. See the module docstring."""
        start = time.monotonic()
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        end = start + self.deadline
        failure = _Retry("no attempt made")
        for attempt in range(self.retries + 1):
            watchdog = _Watchdog(end - time.monotonic())
            try:
                result = self._follow(url, headers, watchdog)
            except _Retry as exc:
                failure = exc
                if watchdog.fired:
                    raise self._too_slow(url, start) from exc
                if attempt < self.retries:
                    wait = self._delay(attempt, exc.retry_after)
                    if time.monotonic() + wait >= end:  # the next attempt could not finish
                        raise self._too_slow(url, start, f" ({exc.reason})") from exc
                    self._sleep(wait)
                continue
            finally:
                watchdog.cancel()
            if result.not_modified:  # a 304 need not repeat the validators: keep the ones sent
                result = replace(
                    result,
                    etag=result.etag or etag,
                    last_modified=result.last_modified or last_modified,
                )
            return replace(result, elapsed=time.monotonic() - start)
        raise TransientFetchError(
            f"{failure.reason} (gave up after {self.retries + 1} attempts)",
            url=url,
            status=failure.status,
        )

    def _too_slow(self, url: str, start: float, why: str = "") -> TransientFetchError:
        spent = time.monotonic() - start
        return TransientFetchError(
            f"no complete answer within the {self.deadline:g} s fetch deadline "
            f"(gave up after {spent:.1f} s){why}",
            url=url,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        # Full jitter (uniform over [0, cap]) spreads out workers that failed together.
        return random.uniform(0.0, min(self.backoff * 2**attempt, self.max_retry_after))

    def _follow(self, url: str, headers: dict[str, str], watchdog: _Watchdog) -> FetchResult:
        """One attempt: the request and its redirects. `elapsed` is left for `fetch` to fill."""
        current = _checked_url(url)
        for _ in range(MAX_REDIRECTS + 1):
            request = self._request(current, headers)
            request.extensions["trace"] = watchdog.trace
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise _Retry(f"{type(exc).__name__} on {current}: {exc}") from exc
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    try:
                        current = _checked_url(current.join(location))
                    except httpx.InvalidURL as exc:
                        bad = f"bad redirect {location!r}"
                        raise PermanentFetchError(bad, url=str(current)) from exc
                    continue
                return self._result(current, response)
            finally:
                response.close()
        raise PermanentFetchError(f"more than {MAX_REDIRECTS} redirects", url=url)

    def _request(self, url: httpx.URL, headers: dict[str, str]) -> httpx.Request:
        """The request for one hop, after the SSRF guard.

        DNS rebinding: a name could resolve to a public address when checked and to 127.0.0.1 when
        httpx connects. So the guard resolves once, requires *every* address to be public, and pins
        the connection to the checked address: the URL's host becomes the IP, while the Host header
        and the TLS SNI/certificate check keep the real name.
        """
        if self.allow_private:
            return self._client.build_request("GET", url, headers=headers)
        host = url.raw_host.decode("ascii")
        address = self._public_address(host, str(url))
        return self._client.build_request(
            "GET",
            url.copy_with(host=str(address)),
            headers={**headers, "Host": url.netloc.decode("ascii")},
            extensions={"sni_hostname": host},
        )

    def _public_address(self, host: str, url: str) -> IPAddress:
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a) for a in self._resolver(host)]
            except OSError as exc:
                raise _Retry(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise _Retry(f"{host} resolved to no address")
        for address in addresses:
            if not is_public_address(address):
                raise PermanentFetchError(
                    f"refused {host}: it resolves to non-public address {address}", url=url
                )
        return addresses[0]

    def _result(self, url: httpx.URL, response: httpx.Response) -> FetchResult:
        status = response.status_code
        if status == 429 or status >= 500:
            wait = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            raise _Retry(f"HTTP {status} from {url}", status, wait)
        if status != 304 and not 200 <= status < 300:
            raise PermanentFetchError(f"HTTP {status}", url=str(url), status=status)
        body = b"" if status == 304 else self._read(response, str(url))
        return FetchResult(
            url=str(url),
            status=status,
            body=body,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            not_modified=status == 304,
            content_type=response.headers.get("content-type"),
            elapsed=0.0,
        )

    def _read(self, response: httpx.Response, url: str) -> bytes:
        """The decoded body, aborting as soon as it passes `max_bytes`."""
        too_large = PermanentFetchError(f"response larger than {self.max_bytes} bytes", url=url)
        # Reject early on Content-Length only for unencoded bodies: it counts encoded bytes, and
        # the cap is on decoded ones.
        declared = response.headers.get("content-length", "")
        identity = response.headers.get("content-encoding", "identity").lower() == "identity"
        if identity and declared.isdigit() and int(declared) > self.max_bytes:  # h11: ASCII digits
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            # iter_bytes yields *decoded* bytes, so the cap also stops decompression bombs (one
            # network chunk can still inflate a lot before we see it: bounded, not zero).
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_large
                chunks.append(chunk)
        except httpx.TransportError as exc:  # truncated body, read timeout, reset: try again
            raise _Retry(f"{type(exc).__name__} reading {url}: {exc}") from exc
        except httpx.DecodingError as exc:
            raise PermanentFetchError(f"cannot decode body: {exc}", url=url) from exc
        return b"".join(chunks)
