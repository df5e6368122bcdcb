"""A real SMTP server for tests: aiosmtpd on a free local port, collecting what it receives.

    with SMTPSink() as sink:
        sink.fail_next("RCPT", 1, "451 4.3.0 try later")     # the next RCPT is refused once
        sink.reject("gone@example.org", "550 5.1.1 no such user")
        mailer = SMTPMailer(sink.url)
        ...
        sink.messages[0].message["Subject"]; sink.connections  # distinct client connections
        sink.hold(True); sink.held                            # RCPTs wait; how many are waiting

Scripted replies are taken in order; everything else is accepted. `restart()` stops the server
(dropping every open connection) and starts a new one on the same port; `stop()` leaves it down.
"""

from __future__ import annotations

import asyncio
import email.policy
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import free_port


@dataclass(frozen=True)
class Received:
    """One accepted message: envelope and the exact bytes of the DATA."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: Any

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Script:
    replies: dict[str, deque[str]] = field(
        default_factory=lambda: {"MAIL": deque(), "RCPT": deque(), "DATA": deque()}
    )
    rejected: dict[str, str] = field(default_factory=dict)
    data_delay: float = 0.0
    hold_rcpt: bool = False


class _Handler:
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink

    def _scripted(self, stage: str) -> str | None:
        with self.sink.lock:
            queue = self.sink.script.replies[stage]
            return queue.popleft() if queue else None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        with self.sink.lock:
            self.sink.peers.add(session.peer)
        if (reply := self._scripted("MAIL")) is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.sink.script.hold_rcpt:  # a client stuck mid-transaction, before any DATA
            with self.sink.lock:
                self.sink.held += 1
            try:
                while self.sink.script.hold_rcpt:
                    await asyncio.sleep(0.05)
            finally:
                with self.sink.lock:
                    self.sink.held -= 1
        if (reply := self._scripted("RCPT")) is not None:
            return reply
        if address in self.sink.script.rejected:
            return self.sink.script.rejected[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.script.data_delay:
            await asyncio.sleep(self.sink.script.data_delay)
        if (reply := self._scripted("DATA")) is not None:
            return reply
        with self.sink.lock:
            self.sink.messages.append(
                Received(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content),
                    session.peer,
                )
            )
            n = len(self.sink.messages)
        return f"250 2.0.0 OK queued as Q{n}"


class SMTPSink:
    """aiosmtpd on 127.0.0.1. `auth` = (user, password) requires AUTH; `tls_context` offers
    STARTTLS (required when `require_starttls`); `implicit_tls` serves TLS from the start."""

    def __init__(
        self,
        *,
        port: int | None = None,
        auth: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: bool = False,
    ) -> None:
        self.port = port or free_port()
        # Every accepted DATA, in order: a message received twice is here twice.
        self.messages: list[Received] = []
        self.held = 0  # transactions waiting in a held RCPT right now
        self.peers: set[Any] = set()
        self.script = _Script()
        self.lock = threading.Lock()
        self._auth = auth
        self._tls = tls_context
        self._require_starttls = require_starttls
        self._implicit_tls = implicit_tls
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"{'smtps' if self._implicit_tls else 'smtp'}://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """How many distinct client connections started a mail transaction."""
        return len(self.peers)

    def fail_next(self, stage: str, times: int, reply: str) -> None:
        """Answer the next `times` MAIL, RCPT or DATA commands with `reply`."""
        with self.lock:
            self.script.replies[stage].extend([reply] * times)

    def reject(self, address: str, reply: str) -> None:
        """Always answer RCPT TO:<address> with `reply`."""
        self.script.rejected[address] = reply

    def hold(self, on: bool) -> None:
        """While on, every RCPT waits (its client stuck mid-transaction, nothing accepted yet)."""
        self.script.hold_rcpt = on

    def slow_data(self, seconds: float) -> None:
        """Wait this long before answering each DATA."""
        self.script.data_delay = seconds

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self._auth is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self._auth
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SMTPSink:
        kwargs: dict[str, Any] = {}
        if self._auth:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self._tls is not None and not self._implicit_tls,
            )
        if self._tls is not None and not self._implicit_tls:
            kwargs.update(tls_context=self._tls, require_starttls=self._require_starttls)
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=self._tls if self._implicit_tls else None,
            **kwargs,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> SMTPSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
