"""`paperalerts run`: the web app, a Celery worker and beat as child processes of one supervisor.

The supervisor starts each child in its own session, so the terminal's Ctrl-C reaches only the
supervisor, which then asks every child to stop once (SIGTERM: uvicorn finishes its requests, the
worker finishes its tasks, beat saves its schedule), waits `grace` seconds, and kills what is
left. A second Ctrl-C kills at once. When a child dies on its own, the others are stopped and
`paperalerts run` exits non-zero: a half-running service is worse than a stopped one.

On Linux each child also gets SIGKILL if the supervisor itself dies (PR_SET_PDEATHSIG), so a
killed `paperalerts run` never leaves a second beat behind. Nothing is lost either way: the
database is the source of truth and the sweep re-sends what a killed worker left (DESIGN §2).

The web child is ``paperalerts web``; the worker and beat are started as ``python -m
paperalerts.runner worker|beat`` (`child_main`), which runs them on the app of
`paperalerts.tasks` after `prepare_celery` has fitted it to the settings.
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
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from celery import Celery

    from paperalerts.config import Settings

PR_SET_PDEATHSIG: Final = 1
# kombu's SQLAlchemy transport hands every transport option to create_engine(), which refuses
# what it does not know (visibility_timeout, polling_interval...); these are the ones it reads.
SQLA_TRANSPORT_OPTIONS: Final = frozenset({"queue_tablename", "message_tablename"})


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
    """The three children of `paperalerts run`: web, worker (all queues) and beat."""
    me = (python, "-m", "paperalerts.runner")
    return [
        ChildSpec("web", (python, "-m", "paperalerts", "web", "--host", host, "--port", str(port))),
        ChildSpec(
            "worker",
            (*me, "worker", "--concurrency", str(concurrency), "--loglevel", loglevel),
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


# --- the children ------------------------------------------------------------------------


def prepare_celery(app: Celery, settings: Settings) -> Celery:
    """Fit the Celery app to `settings` for the embedded mode: keep only the transport options
    kombu's SQLAlchemy transport understands (it passes them all to create_engine()), and tick
    every TICK_SECONDS. Both are no-ops once `paperalerts.tasks` does them itself."""
    broker = str(app.conf.broker_url or "")
    if broker.startswith(("sqla+", "sqlalchemy+")):
        options = dict(app.conf.broker_transport_options or {})
        app.conf.broker_transport_options = {
            k: v for k, v in options.items() if k in SQLA_TRANSPORT_OPTIONS
        }
    schedule: dict[str, Any] = dict(app.conf.beat_schedule or {})
    if "tick" in schedule:
        schedule["tick"] = {**schedule["tick"], "schedule": float(settings.tick_seconds)}
        app.conf.beat_schedule = schedule
    return app


def child_main(argv: Sequence[str]) -> int:
    """``python -m paperalerts.runner worker|beat [options]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="paperalerts.runner")
    parser.add_argument("role", choices=("worker", "beat"))
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--loglevel", default="info")
    parser.add_argument("--schedule", default="celerybeat-schedule")
    args = parser.parse_args(list(argv))
    from paperalerts.config import get_settings
    from paperalerts.tasks import app

    prepare_celery(app, get_settings())
    if args.role == "worker":
        app.worker_main(
            ["worker", "-Q", "scrape,match,mail", "-c", str(args.concurrency), "-l", args.loglevel]
        )
    else:
        app.start(["beat", "-l", args.loglevel, "-s", args.schedule])
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
