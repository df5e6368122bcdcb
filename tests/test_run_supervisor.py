"""The `paperalerts run` supervisor on real child processes: Ctrl-C stops every child and exits
0, a child's death stops the others and exits non-zero, a child that ignores SIGTERM is killed
after the grace time, and a SIGKILLed supervisor takes its children with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from paperalerts.faces.runner import ChildSpec, Supervisor, child_specs

# A child that writes its pid and then sleeps; with IGNORE_TERM it ignores SIGTERM.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    if sys.argv[2] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(float(sys.argv[3]))
    sys.exit(int(sys.argv[4]))
    """
)


def supervisor_script(tmp: Path, children: list[tuple[str, str, float, int]], grace: float) -> str:
    """A Python program running a Supervisor over `children` (name, term, sleep, exit code)."""
    specs = [
        ChildSpec(name, (sys.executable, "-c", CHILD, str(tmp / f"{name}.pid"), term,
                         str(sleep), str(code)))
        for name, term, sleep, code in children
    ]  # fmt: skip
    return textwrap.dedent(
        f"""
        import sys
        from paperalerts.faces.runner import ChildSpec, Supervisor
        specs = [ChildSpec(n, tuple(a)) for n, a in {[(s.name, list(s.argv)) for s in specs]!r}]
        sys.exit(Supervisor(specs, grace={grace}).run())
        """
    )


def start(tmp: Path, children: list[tuple[str, str, float, int]], grace: float = 5.0
          ) -> subprocess.Popen[bytes]:  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", supervisor_script(tmp, children, grace)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not all((tmp / f"{c[0]}.pid").exists() and (tmp / f"{c[0]}.pid").read_text()
                  for c in children):  # fmt: skip
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.05)
    return proc


def pid_of(tmp: Path, name: str) -> int:
    return int((tmp / f"{name}.pid").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def wait_dead(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_sigint_stops_every_child_and_exits_zero(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the supervisor) stops all children and the supervisor exits 0."""
    proc = start(tmp_path, [("web", "term", 60, 0), ("worker", "term", 60, 0)])
    pids = [pid_of(tmp_path, "web"), pid_of(tmp_path, "worker")]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0
    assert all(wait_dead(p, 5) for p in pids)
    assert b"stopped" in (proc.stdout.read() if proc.stdout else b"")


def test_a_dead_child_stops_the_others_with_its_exit_code(tmp_path: Path) -> None:
    """When one child exits on its own (code 3), the others are stopped and run exits 3."""
    proc = start(tmp_path, [("beat", "term", 1.0, 3), ("web", "term", 60, 0)])
    web = pid_of(tmp_path, "web")
    assert proc.wait(20) == 3
    assert wait_dead(web, 5)
    assert b"beat exited with code 3" in (proc.stdout.read() if proc.stdout else b"")


def test_a_child_exiting_zero_unasked_is_still_a_failure(tmp_path: Path) -> None:
    """A child that exits 0 while nobody asked it to stop makes run exit 1, not 0."""
    proc = start(tmp_path, [("worker", "term", 0.5, 0), ("web", "term", 60, 0)])
    assert proc.wait(20) == 1


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_time(tmp_path: Path) -> None:
    """A child that ignores SIGTERM is SIGKILLed once the grace time has passed."""
    proc = start(tmp_path, [("stubborn", "ignore", 60, 0)], grace=1.0)
    child = pid_of(tmp_path, "stubborn")
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert 0.9 <= time.monotonic() - began < 10
    assert wait_dead(child, 5)
    assert b"did not stop within 1s" in (proc.stdout.read() if proc.stdout else b"")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_die_with_a_sigkilled_supervisor(tmp_path: Path) -> None:
    """SIGKILL on the supervisor leaves no child behind (so a restart never runs two beats)."""
    proc = start(tmp_path, [("beat", "term", 60, 0), ("worker", "ignore", 60, 0)])
    pids = [pid_of(tmp_path, "beat"), pid_of(tmp_path, "worker")]
    proc.kill()
    proc.wait(10)
    assert all(wait_dead(p, 5) for p in pids)


def test_a_child_that_cannot_start_fails_the_run(tmp_path: Path) -> None:
    """A child whose program does not exist makes run() return 1 and stops the started ones."""
    sup = Supervisor(
        [ChildSpec("ok", (sys.executable, "-c", "import time; time.sleep(30)")),
         ChildSpec("missing", (str(tmp_path / "no-such-program"),))],
        grace=2, say=lambda _line: None,
    )  # fmt: skip
    assert sup.run() == 1
    assert sup.procs["ok"].poll() is not None


def test_child_specs_are_the_web_command_and_the_runner_worker_and_beat(tmp_path: Path) -> None:
    """The children are `paperalerts web`, a worker for the work queues, a one-process worker
    for the tick queue alone (issue 21: long tasks never starve the tick) and beat, with the
    options given."""
    specs = child_specs(host="0.0.0.0", port=8123, concurrency=3, loglevel="warning",
                        schedule=tmp_path / "s", python="py")  # fmt: skip
    assert [s.name for s in specs] == ["web", "worker", "ticker", "beat"]
    assert specs[0].argv == (
        "py",
        "-m",
        "paperalerts",
        "web",
        "--host",
        "0.0.0.0",
        "--port",
        "8123",
    )
    assert specs[1].argv[:4] == ("py", "-m", "paperalerts", "worker")
    assert "--concurrency" in specs[1].argv and "3" in specs[1].argv
    queues = {s.name: s.argv[s.argv.index("--queues") + 1] for s in specs[1:3]}
    assert queues == {"worker": "scrape,match,mail", "ticker": "tick"}
    assert specs[2].argv[specs[2].argv.index("--concurrency") + 1] == "1"
    assert specs[3].argv[-4:] == ("--schedule", str(tmp_path / "s"), "--loglevel", "warning")


def test_make_celery_fits_the_embedded_broker_and_the_tick_interval() -> None:
    """kombu's SQLAlchemy transport gets no transport options (it passes them all to
    create_engine, which refuses visibility_timeout); Redis keeps its visibility timeout; beat
    ticks every TICK_SECONDS."""
    from paperalerts.edges.config import Settings
    from paperalerts.faces.tasks import VISIBILITY_TIMEOUT, make_celery

    app = make_celery(Settings(database_url="sqlite:////tmp/never-opened.db", tick_seconds=5))
    assert str(app.conf.broker_url).startswith("sqla+sqlite:///")
    assert app.conf.broker_transport_options == {}
    assert app.conf.beat_schedule["tick"] == {"task": "paperalerts.tick", "schedule": 5}
    redis = make_celery(Settings(broker_url="redis://127.0.0.1:1/0"))
    assert redis.conf.broker_transport_options == {"visibility_timeout": VISIBILITY_TIMEOUT}
