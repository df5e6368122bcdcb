"""Test support for fetch.py: a real local HTTP(S) server with scripted replies, and transports
that make sure no test traffic leaves loopback.

No test sends a packet anywhere but loopback: URLs with other hosts are either refused before any
connection (`NoNetwork` fails the test if reached), or go through `LoopbackOnly`, which routes one
made-up public IP to the local server and fails the test on anything else.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from paperalerts.edges.fetch import Fetcher

PUBLIC_IP = "93.184.216.34"  # what the test resolvers answer for public.example; never contacted


@dataclass
class Reply:
    """One scripted response. `length` overrides the declared Content-Length (None: omit it and
    close the connection after the body); `delay` stalls before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    length: int | str | None = "auto"
    delay: float = 0.0


Script = Callable[[str, dict[str, str]], Reply]


def not_found(path: str, headers: dict[str, str]) -> Reply:
    return Reply(404)


class LocalServer:
    """A real ThreadingHTTPServer on 127.0.0.1:0 (HTTPS when given a TLS context). `route(path,
    *replies)` serves the replies in order (the last one repeats); `requests` records (path,
    headers) of every request received."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Script] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = dict(self.headers.items())
                owner.requests.append((self.path, headers))
                reply = owner.routes.get(self.path, not_found)(self.path, headers)
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.length is None:
                    self.close_connection = True
                else:
                    length = len(reply.body) if reply.length == "auto" else reply.length
                    self.send_header("Content-Length", str(length))
                    # a body shorter than declared ends with the connection closed mid-body
                    self.close_connection = length != len(reply.body)
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def route(self, path: str, *replies: Reply) -> None:
        queue = list(replies)

        def next_reply(path: str, headers: dict[str, str]) -> Reply:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.routes[path] = next_reply

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@contextmanager
def running(tls: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    """A LocalServer serving in a thread for the duration of the block."""
    local = LocalServer(tls)
    thread = threading.Thread(target=local.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield local
    finally:
        local.server.shutdown()
        local.server.server_close()


def make_fetcher(sleeps: list[float] | None = None, **options: Any) -> Fetcher:
    """A Fetcher with small test defaults; waits are recorded in `sleeps` instead of slept."""
    settings: dict[str, Any] = {
        "timeout": 2.0,
        "retries": 2,
        "backoff": 0.5,
        "max_bytes": 1_000_000,
        "max_retry_after": 60.0,
        "allow_private": True,
        "sleep": (sleeps if sleeps is not None else []).append,
    }
    return Fetcher(**(settings | options))


class NoNetwork(httpx.BaseTransport):
    """A transport that fails the test if anything reaches it."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was sent to {request.url}")


class LoopbackOnly(httpx.BaseTransport):
    """Delivers requests addressed to PUBLIC_IP to the local server instead; refuses anything else,
    so a guard that failed to stop a hop fails the test rather than reaching the network."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host != PUBLIC_IP:
            raise AssertionError(f"test transport refuses to route {request.url}")
        local = request.url.copy_with(host="127.0.0.1")
        return self.inner.handle_request(
            httpx.Request("GET", local, headers=request.headers, extensions=request.extensions)
        )

    def close(self) -> None:
        self.inner.close()
