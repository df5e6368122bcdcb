"""Fault injection for the delivery tests (issue 21): a TCP proxy that can be cut (a database
that goes away and comes back without touching the shared server), a private redis-server that
can be stopped and started on its own port, and counting at the SMTP sink by Message-ID.

    with TCPProxy(("127.0.0.1", 5432)) as proxy:    # connect to proxy.port instead
        proxy.cut()                                 # open connections dropped, new ones refused
        proxy.restore()                             # accepting again on the same port
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from conftest import free_port


class TCPProxy:
    """Forwards 127.0.0.1:`port` to `target`, one pair of threads per connection."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target, self.port = target, port or free_port()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.cuts = 0

    def __enter__(self) -> TCPProxy:
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def restore(self) -> None:
        """Accept connections (again) on the same port."""
        with self._lock:
            if self._listener is not None:
                return
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", self.port))
            ls.listen(64)
            self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (the server is "down")."""
        with self._lock:
            ls, self._listener = self._listener, None
            socks, self._socks = self._socks, set()
            self.cuts += 1
        if ls is not None:
            with contextlib.suppress(OSError):
                ls.shutdown(socket.SHUT_RDWR)
            ls.close()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def blip(self, seconds: float) -> None:
        """Cut now and restore after `seconds`, without blocking the caller."""
        self.cut()
        threading.Timer(seconds, self.restore).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not ls:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._socks |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class PrivateRedis:
    """A redis-server of the test's own on a free port (stopping it disturbs nobody else)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir, self.port = workdir, port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def copies_by_message_id(raw: Iterable[bytes]) -> Counter[str]:
    """How many times each Message-ID arrived (repeats counted)."""
    out: Counter[str] = Counter()
    for data in raw:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        out[str(msg["Message-ID"])] += 1
    return out


def fast_clock(start: datetime, speed: float) -> FastClock:
    return FastClock(start, speed)


class FastClock:
    """Wall time running `speed` times faster than real time from `start`: leases of tens of
    (virtual) seconds run out in a few real ones, and every process of a test shares the pace."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed, self._t0 = start, speed, time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)
