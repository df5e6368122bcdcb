"""`paperalerts run`: the web app, a Celery worker and beat as child processes of one supervisor.

The supervisor starts each child in its own session, so the terminal's Ctrl-C reaches only the
supervisor, which then asks every child to stop once (SIGTERM: uvicorn finishes its requests, the
worker finishes its tasks, beat saves its schedule), waits `grace` seconds, and kills what is
left. A second Ctrl-C kills at once. When a child dies on its own, the others are stopped and
`paperalerts run` exits non-zero: a half-running service is worse than a stopped one.

On Linux each child also gets SIGKILL if the supervisor itself dies (PR_SET_PDEATHSIG), so a
killed `paperalerts run` never leaves a second beat behind. Nothing is lost either way: the
database is the source of truth and the sweep re-sends what a killed worker left.

The children are the CLI's own ``paperalerts web``, ``paperalerts worker`` (twice: one for the
work queues, one process for the tick queue alone) and ``paperalerts beat``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

from paperalerts.edges.broker import WORK_QUEUES

PR_SET_PDEATHSIG: Final = 1


@dataclass(frozen=True)
class ChildSpec:
    """One supervised process: a name for messages and the argv to start it."""

    name: str
    argv: tuple[str, ...]


def child_specs(
    *,
    host: str,
    port: int,
    concurrency: int,
    loglevel: str,
    schedule: Path,
    python: str = sys.executable,
) -> list[ChildSpec]:
    """The children of `paperalerts run`: web, a worker for the work queues, a one-process
    worker for the scheduler's tick alone (long sends or scrapes never make the tick and its
    sweep wait for a free process), and beat."""
    me = (python, "-m", "paperalerts")
    work = ",".join(WORK_QUEUES)
    return [
        ChildSpec("web", (python, "-m", "paperalerts", "web", "--host", host, "--port", str(port))),
        ChildSpec(
            "worker",
            (*me, "worker", "--queues", work, "--concurrency", str(concurrency),
             "--loglevel", loglevel),
        ),
        ChildSpec(
            "ticker",
            (*me, "worker", "--queues", "tick", "--concurrency", "1", "--loglevel", loglevel),
        ),
        ChildSpec("beat", (*me, "beat", "--schedule", str(schedule), "--loglevel", loglevel)),
    ]


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the supervisor dies (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Supervisor:
    """Starts `specs`, waits until a signal or a child's death, then stops them all.

    `on_idle` is called about every `idle_every` seconds while all run (housekeeping such as
    the health check); its exceptions are reported and otherwise ignored."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        env: dict[str, str] | None = None,
        grace: float = 30.0,
        on_idle: Callable[[], None] | None = None,
        idle_every: float = 60.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.specs = list(specs)
        self.env = env
        self.grace = grace
        self.on_idle = on_idle
        self.idle_every = idle_every
        self.say = say
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._signals: list[int] = []
        self._wake = threading.Event()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._wake.set()
        if len(self._signals) > 1:  # asked twice: stop waiting
            self._kill_all()

    def start(self) -> None:
        for spec in self.specs:
            self.procs[spec.name] = subprocess.Popen(
                spec.argv,
                env=self.env,
                start_new_session=True,  # the terminal's Ctrl-C is ours to forward, once
                # Only a prctl() between fork and exec, and the supervisor has one thread.
                preexec_fn=_die_with_parent,
            )
            self.say(f"started {spec.name} (pid {self.procs[spec.name].pid})")

    def run(self) -> int:
        """Supervise until stopped. Returns 0 after a requested stop, else non-zero (the dead
        child's exit code, or 1 when it exited 0 or could not be started)."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            try:
                self.start()
            except OSError as e:
                self.say(f"cannot start a child: {e}")
                self.stop()
                return 1
            died = self._wait()
            self.stop()
            if died is None:
                self.say("stopped")
                return 0
            name, code = died
            self.say(f"{name} exited with code {code}; stopped the others")
            return code if code > 0 else 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait(self) -> tuple[str, int] | None:
        """Until a signal (None) or a child's exit ((name, code))."""
        next_idle = time.monotonic() + self.idle_every
        while not self._signals:
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None:
                    return name, code
            if self.on_idle is not None and time.monotonic() >= next_idle:
                next_idle = time.monotonic() + self.idle_every
                try:
                    self.on_idle()
                except Exception as e:  # housekeeping must not take the service down
                    self.say(f"housekeeping failed: {type(e).__name__}: {e}")
            self._wake.wait(0.2)
        return None

    def stop(self) -> None:
        """SIGTERM every running child, wait up to `grace` seconds, SIGKILL the rest."""
        for proc in self.procs.values():
            if proc.poll() is None:
                # The child alone: a Celery worker stops its own pool after its tasks finish;
                # signalling the pool directly would kill the tasks mid-way.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop within {self.grace:g}s; killing it")
                _signal(proc, signal.SIGKILL)
                proc.wait()

    def _kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal(proc, signal.SIGKILL)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the child's whole process group (a killed worker's pool goes with it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
