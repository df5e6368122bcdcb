"""The overall fetch deadline, against a real local server that drips its answer one byte at a
time: each read is within the timeout, yet the whole fetch ends at the deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from paperalerts.edges.fetch import Fetcher
from paperalerts.errors import TransientFetchError

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 400\r\n\r\n"


def _drip_server(at_once: bytes, answer: bytes, every: float) -> Iterator[str]:
    """A TCP server answering every connection with `at_once`, then `answer` one byte each
    `every` seconds (each byte well inside the client's read timeout), until the client goes
    away."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)  # the request
                conn.sendall(at_once)
                for i in range(len(answer)):
                    if stop.is_set():
                        return
                    conn.sendall(answer[i:i + 1])
                    time.sleep(every)
            except OSError:  # the client cut the connection: what the deadline does
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/drip"
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def dripping_body() -> Iterator[str]:
    yield from _drip_server(HEAD, b"x" * 400, 0.2)  # headers at once, then 80 s of body


@pytest.fixture
def dripping_headers() -> Iterator[str]:
    yield from _drip_server(b"", HEAD + b"x" * 400, 0.2)  # the status line itself drips


def _fetcher(deadline: float) -> Fetcher:
    return Fetcher(timeout=1.0, retries=3, backoff=0.1, max_bytes=1 << 20, max_retry_after=1.0,
                   allow_private=True, deadline=deadline)


@pytest.mark.parametrize("server", ["dripping_body", "dripping_headers"])
def test_a_dripping_server_is_cut_at_the_fetch_deadline(
    server: str, request: pytest.FixtureRequest
) -> None:
    """A server sending one byte every 0.2 s never trips the 1 s read timeout (today's fetch
    stays open for the whole 80 s answer, retries on top); with a 3 s deadline the fetch ends
    by then with a TransientFetchError naming the deadline. Generous margin: loaded machines."""
    url = request.getfixturevalue(server)
    start = time.monotonic()
    with _fetcher(3.0) as fetcher, pytest.raises(TransientFetchError) as e:
        fetcher.fetch(url)
    spent = time.monotonic() - start
    assert "3 s fetch deadline" in str(e.value)
    assert 2.5 < spent < 10.0, spent


def test_no_retry_is_started_that_could_not_finish_before_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused connection is retried with backoff, but a wait that would end after the
    deadline is not slept: the fetch gives up at once, saying why."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed below: connections to it are refused
    slept: list[float] = []
    fetcher = Fetcher(timeout=1.0, retries=5, backoff=1.0, max_bytes=1024, max_retry_after=30,
                      allow_private=True, deadline=5.0, sleep=slept.append)
    monkeypatch.setattr(fetcher, "_delay", lambda attempt, retry_after: 2.0 * (attempt + 1))
    with fetcher, pytest.raises(TransientFetchError, match="5 s fetch deadline") as e:
        fetcher.fetch(f"http://127.0.0.1:{port}/")
    assert "ConnectError" in str(e.value)
    assert slept == [2.0, 4.0]  # the third wait (6 s) would end after the deadline: not slept
