"""The only SMTP code: send an `EmailMessage`, or write it to a folder.

``Mailer`` is the seam: ``send(msg) -> str`` returns the server's final reply (SMTP) or the file
written (outbox), ``close()`` releases the connection. Failures raise the delivery errors of
`paperalerts.errors`, classified so the caller knows whether to retry::

    4xx reply, connection refused/reset/closed, timeout  -> TransientDeliveryError (retry later)
    5xx reply (MAIL, RCPT, DATA, AUTH ...)                -> PermanentDeliveryError
                                                              (.code 550, .enhanced "5.1.1")

`SMTPMailer` keeps one connection and reuses it across sends. A connection that turns out dead at
the start of the next transaction (the server closed it while idle: 421, disconnect, broken pipe)
is reopened and the transaction tried once more; a failure once the message data has been sent is
not retried here (the server may have accepted it), the caller retries with the same Message-ID.
After a failed transaction the session is reset with RSET; a completed DATA already resets it
(RFC 5321 §4.1.1.4), so no RSET is spent between successful messages.

Sending is paced by a token bucket (messages per second), per process or shared through Redis.
A caller that sends a batch books its sends first (`book`): the waits then happen where the caller
puts them (before it claims the rows), and each booked send only waits out what is left of its
turn. One SMTPMailer serves one thread at a time (a lock guards its connection).

`max_exchange_seconds` is the longest one send can take (timeout x the commands of a transaction
on a new connection): a lease shorter than that could run out while the server is still talking,
so `check_lease` refuses such settings at start.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import smtplib
import ssl
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from paperalerts.core.message import Prepared
from paperalerts.edges.ratelimit import RateLimiter, RedisTokenBucket, TokenBucket
from paperalerts.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

if TYPE_CHECKING:
    from paperalerts.edges.config import Settings

_ENHANCED_RE: Final = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class Mailer(Protocol):
    """Sends one message; the pipeline receives one of these."""

    def send(self, msg: EmailMessage | Prepared) -> str: ...

    def close(self) -> None: ...


@runtime_checkable
class Paced(Protocol):
    """A mailer whose sends are paced, and can be booked ahead (`SMTPMailer` with a rate)."""

    @property
    def rate(self) -> float | None: ...

    def book(self, n: int) -> list[float]: ...


# --- error classification ------------------------------------------------------------------


def enhanced_code(reply: bytes | str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply text (``5.1.1``), or None."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    m = _ENHANCED_RE.match(text)
    return m.group(1) if m else None


def classify_reply(code: int, reply: bytes | str, what: str) -> DeliveryError:
    """A delivery error for an SMTP reply: 5xx permanent, anything else transient."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    enhanced = enhanced_code(text)
    message = f"{what}: {code} {text}".strip()
    if 500 <= code <= 599:
        return PermanentDeliveryError(message, code=code, enhanced=enhanced)
    return TransientDeliveryError(message, code=code, enhanced=enhanced)


def classify(exc: BaseException) -> DeliveryError:
    """The delivery error for an exception raised while talking SMTP."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refusals = sorted(exc.recipients.items(), key=lambda kv: -kv[1][0])  # 5xx first
        rcpt, (code, reply) = refusals[0]
        return classify_reply(code, reply, f"recipient {rcpt} refused")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return classify_reply(exc.smtp_code, exc.smtp_error, f"sender {exc.sender} refused")
    if isinstance(exc, smtplib.SMTPResponseException):
        return classify_reply(exc.smtp_code, exc.smtp_error, "SMTP server replied")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentDeliveryError(f"SMTP server lacks a required extension: {exc}")
    if isinstance(exc, TimeoutError):
        return TransientDeliveryError(f"SMTP timeout: {exc}")
    kind = type(exc).__name__
    return TransientDeliveryError(f"SMTP connection problem ({kind}): {exc}")


# --- SMTP ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SMTPConfig:
    """Where and how to connect, from ``smtp://user:pass@host:port?starttls=true`` (port 25,
    or 587 with STARTTLS) or ``smtps://user:pass@host:port`` (TLS from the start, port 465)."""

    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SMTPConfig:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ConfigError(
                f"SMTP_URL must be smtp://host[:port] or smtps://host[:port]: {url!r}"
            )
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls"}
        if unknown:
            raise ConfigError(f"SMTP_URL has unknown options {sorted(unknown)}")
        flag = query.get("starttls", "false")
        if flag not in _TRUE | _FALSE:
            raise ConfigError(f"SMTP_URL starttls must be true or false, got {flag!r}")
        tls, starttls = parts.scheme == "smtps", flag in _TRUE
        if tls and starttls:
            raise ConfigError("SMTP_URL: smtps:// is already TLS; drop starttls=true")
        try:
            port = parts.port or (465 if tls else 587 if starttls else 25)
        except ValueError as e:
            raise ConfigError(f"SMTP_URL has a bad port: {url!r}") from e
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port, tls, starttls, user, password)


class _Stale(Exception):
    """A reused connection was found dead before the server accepted anything."""


class SMTPMailer:
    """Sends over one reused SMTP connection, paced by `limiter` (or a per-process bucket of
    `rate` messages/s shared through `redis_url` when given; `rate` None or 0 = unpaced)."""

    def __init__(
        self,
        url: str,
        *,
        rate: float | None = None,
        redis_url: str | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.config = SMTPConfig.from_url(url)
        if limiter is None and rate:
            limiter = RedisTokenBucket(redis_url, rate) if redis_url else TokenBucket(rate)
        self._limiter = limiter
        self._timeout = timeout
        self._context = ssl_context
        self._local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()
        self._booked: deque[float] = deque()  # monotonic times the next sends may go at
        self.connections_opened = 0

    @property
    def rate(self) -> float | None:
        """Messages per second this mailer is paced at (None: unpaced)."""
        return self._limiter.rate if self._limiter is not None else None

    def book(self, n: int) -> list[float]:
        """Reserve the pacing of the next `n` sends now (one reservation: nobody else's send
        falls between them); the `time.monotonic()` times at which each may go. The next `n`
        sends use these turns instead of waiting for new ones. Turns left unused for more than
        a second are dropped (a dropped turn only slows sending)."""
        if self._limiter is None:
            return [time.monotonic()] * n
        now = time.monotonic()
        while self._booked and self._booked[0] < now - 1.0:
            self._booked.popleft()
        if (more := n - len(self._booked)) > 0:
            self._booked.extend(now + w for w in self._limiter.reserve_many(more))
        return list(self._booked)[:n]

    def _pace(self) -> None:
        if self._booked:
            if (wait := self._booked.popleft() - time.monotonic()) > 0:
                time.sleep(wait)
        elif self._limiter is not None:
            self._limiter.acquire()

    def send(self, msg: EmailMessage | Prepared) -> str:
        """Send `msg` (a message, or one assembled as bytes with its envelope: `Prepared`) to
        its To/Cc/Bcc addresses (Bcc is not transmitted) with its Return-Path (not transmitted
        either), else its Sender, else its From as the envelope sender; return the server's
        reply to the data, e.g. ``250 OK queued as 7F3A``.
        Raises Transient/PermanentDeliveryError."""
        sender, recipients, data, options = _envelope(msg)
        self._pace()
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                try:
                    conn = self._connection()
                    return self._transaction(conn, sender, recipients, data, options)
                except _Stale as e:
                    self._drop()
                    if attempt == 2 or not reused:
                        raise classify(e.__cause__ or e) from e
                except (smtplib.SMTPException, OSError) as e:
                    self._recover(e)
                    raise classify(e) from e
        raise AssertionError("unreachable")

    def close(self) -> None:
        """QUIT and close the connection (a later send opens a new one)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._conn.quit()
                self._drop()

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        cfg = self.config
        context = self._context or ssl.create_default_context()
        conn: smtplib.SMTP
        if cfg.tls:
            conn = smtplib.SMTP_SSL(
                cfg.host, cfg.port, self._local_hostname, timeout=self._timeout, context=context
            )
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, self._local_hostname, timeout=self._timeout)
        try:
            conn.ehlo()
            if cfg.starttls:
                conn.starttls(context=context)
                conn.ehlo()
            if cfg.username is not None:
                conn.login(cfg.username, cfg.password or "")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.connections_opened += 1
        return conn

    def _transaction(
        self,
        conn: smtplib.SMTP,
        sender: str,
        recipients: list[str],
        data: bytes,
        options: list[str],
    ) -> str:
        try:
            code, reply = conn.mail(sender, options)
            if code == 421:
                raise _Stale from smtplib.SMTPSenderRefused(code, reply, sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            refused: dict[str, tuple[int, bytes]] = {}
            for rcpt in recipients:
                code, reply = conn.rcpt(rcpt)
                if code == 421:
                    raise _Stale from smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
                if code not in (250, 251):
                    refused[rcpt] = (code, reply)
        except (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError) as e:
            raise _Stale from e
        if refused:  # one recipient per message is how paperalerts sends; all or nothing
            raise smtplib.SMTPRecipientsRefused(refused)
        code, reply = conn.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return f"{code} {reply.decode('utf-8', 'replace')}"

    def _recover(self, exc: BaseException) -> None:
        """After a failed transaction: RSET a live session, drop a dead or unknown one."""
        code = getattr(exc, "smtp_code", None)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code = min(c for c, _ in exc.recipients.values())
        if self._conn is None or code is None or code == 421:
            self._drop()
            return
        try:
            self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None


_NEWLINE_RE: Final = re.compile(r"\r\n|\r|\n")  # the line ends email.generator normalises


class _BlockGenerator(BytesGenerator):
    """BytesGenerator writing each body as one block instead of line by line (the same bytes;
    the stock method makes ~1000 small writes for a digest, half the cost of flattening it)."""

    def _write_lines(self, lines: str) -> None:
        # flatten() has set self.policy to the policy with the requested line separator
        if lines and self.policy is not None:
            self.write(_NEWLINE_RE.sub(self.policy.linesep, lines))


def _envelope(msg: EmailMessage | Prepared) -> tuple[str, list[str], bytes, list[str]]:
    """Envelope sender, recipients, the bytes to send (CRLF, Bcc removed) and MAIL options."""
    if isinstance(msg, Prepared):  # assembled for SMTP already (ASCII envelope: no options)
        return msg.sender, list(msg.recipients), msg.data, []
    whole: EmailMessage = msg  # (closures see the declared type, not the narrowed one)

    def addresses(field: str) -> list[str]:
        values: list[Any] = whole.get_all(field, [])
        out: list[str] = []
        for v in values:
            if hasattr(v, "addresses"):
                out.extend(a.addr_spec for a in v.addresses)
            else:
                out.extend(addr for _, addr in getaddresses([str(v)]) if addr)
        return out

    # Return-Path is how a message names its envelope sender (the VERP address bounces come
    # back to); only the receiving side may write the header (RFC 5321 §4.4), so it is removed.
    senders = addresses("Return-Path") or addresses("Sender") or addresses("From")
    recipients = addresses("To") + addresses("Cc") + addresses("Bcc")
    if not senders or not recipients:
        raise PermanentDeliveryError("message has no From or no recipient", enhanced="5.6.0")
    if "Bcc" in msg or "Return-Path" in msg:  # never transmitted: send a copy without them
        msg = copy.copy(msg)
        del msg["Bcc"]
        del msg["Return-Path"]
    international = any(not a.isascii() for a in (senders[0], *recipients))
    base = msg.policy
    policy = (
        base.clone(linesep="\r\n", utf8=international)
        if isinstance(base, EmailPolicy)
        else base.clone(linesep="\r\n")
    )
    buf = io.BytesIO()
    _BlockGenerator(buf, policy=policy).flatten(msg, linesep="\r\n")
    return senders[0], recipients, buf.getvalue(), (["SMTPUTF8"] if international else [])


# --- files ---------------------------------------------------------------------------------


class FileMailer:
    """Writes each message to ``<outbox_dir>/<name from its Message-ID>.eml`` atomically
    (temporary file + rename). Sending the same Message-ID again rewrites the same file."""

    def __init__(self, outbox_dir: Path | str) -> None:
        self.outbox_dir = Path(outbox_dir)

    def send(self, msg: EmailMessage | Prepared) -> str:
        mid = str(msg.get("Message-ID", "")).strip().strip("<>")
        if not mid:
            raise PermanentDeliveryError("message has no Message-ID", enhanced="5.6.0")
        name = re.sub(r"[^A-Za-z0-9._@+-]", "_", mid)[:200].lstrip(".") + ".eml"
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        path = self.outbox_dir / name
        data = _envelope(msg)[2]
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".eml", dir=self.outbox_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def close(self) -> None:
        """Nothing to release."""


def max_exchange_seconds(config: SMTPConfig, timeout: float) -> float:
    """The longest one send can take when every step uses its whole `timeout`: connect, EHLO,
    (STARTTLS and EHLO again), (AUTH), MAIL, RCPT, DATA, and the reply to the message data."""
    steps = 6 + (2 if config.starttls else 0) + (1 if config.username is not None else 0)
    return steps * timeout


def longest_exchange(settings: Settings) -> float:
    """`max_exchange_seconds` for the configured SMTP_URL (0 for the file mailer)."""
    if not settings.smtp_url:
        return 0.0
    return max_exchange_seconds(SMTPConfig.from_url(settings.smtp_url), settings.smtp_timeout)


def check_lease(settings: Settings) -> None:
    """Refuse settings whose delivery lease could run out during one SMTP exchange (another
    worker would then send the same message again): a ConfigError saying what to change."""
    longest = longest_exchange(settings)
    if settings.delivery_lease_seconds < longest:
        raise ConfigError(
            f"PAPERALERTS_DELIVERY_LEASE_SECONDS={settings.delivery_lease_seconds} is shorter than "
            f"the longest SMTP exchange ({longest:g}s: PAPERALERTS_SMTP_TIMEOUT="
            f"{settings.smtp_timeout:g}s x {longest / settings.smtp_timeout:g} steps for this "
            f"SMTP_URL); a send could outlive its lease and go out twice. Raise the lease to at "
            f"least {longest:g} or lower the timeout"
        )


def rate_redis_url(settings: Settings) -> str | None:
    """Where the shared send-rate bucket lives: SMTP_RATE_REDIS_URL, else a Redis broker."""
    if settings.smtp_rate_redis_url:
        return settings.smtp_rate_redis_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return None


def mailer_from_settings(settings: Settings) -> Mailer:
    """SMTP when SMTP_URL is set, else .eml files in OUTBOX_DIR. Sends are paced at SMTP_RATE,
    one bucket shared by every worker through SMTP_RATE_REDIS_URL, or through the broker when
    the broker is Redis; per process otherwise."""
    if settings.smtp_url:
        return SMTPMailer(
            settings.smtp_url,
            rate=settings.smtp_rate,
            redis_url=rate_redis_url(settings),
            timeout=settings.smtp_timeout,
        )
    return FileMailer(settings.outbox_dir)
