"""The demo's two local servers: an HTTP server playing the sources, and an SMTP sink (aiosmtpd)
playing the subscribers' mail servers. Both listen on 127.0.0.1 only, on free ports."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from aiosmtpd.controller import Controller

from paperalerts.faces.demo.pages import API_FILE, FEED_FILE, shipped

API_PATH: Final = "/api/daily_papers"
FEED_PATH: Final = "/feed.xml"
_TYPES: Final = {API_PATH: "application/json", FEED_PATH: "application/rss+xml; charset=utf-8"}


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PageServer:
    """Serves day `day` of the demo pages at ``/api/daily_papers`` and ``/feed.xml``; set `day`
    to 2 for the second snapshot. Counts the requests it answered."""

    def __init__(self) -> None:
        self.day = 1
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = {API_PATH: API_FILE, FEED_PATH: FEED_FILE}.get(self.path.split("?")[0])
                if name is None:
                    self.send_error(404)
                    return
                body = shipped(name.format(outer.day))
                with outer._lock:
                    outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", _TYPES[self.path.split("?")[0]])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class ReceivedMail:
    """One message the sink accepted: envelope recipients and the exact bytes."""

    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


class MailSink:
    """An SMTP server on 127.0.0.1 accepting every message into `messages`; with `save_dir`,
    each is also written there as ``NNN.eml`` as it arrives."""

    def __init__(self, save_dir: Path | None = None) -> None:
        self.messages: list[ReceivedMail] = []
        self.save_dir = save_dir
        self.lock = threading.Lock()
        self.port = free_port()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(
                ReceivedMail(tuple(envelope.rcpt_tos), bytes(envelope.original_content))
            )
            n = len(self.messages)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            (self.save_dir / f"{n:03d}.eml").write_bytes(bytes(envelope.original_content))
        return f"250 2.0.0 OK queued as demo{n}"

    def start(self) -> MailSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
