"""The processes `bench_daily_run.py` starts and watches: real `paperalerts worker`s, and what
they use - peak RSS (VmHWM) and CPU seconds read from /proc, per process, kept after exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from daily_run_world import REPO


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (the prefork pool's children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(k) for k in kids]
    return out


def hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by groups of processes (the workers, the sink, the database's server
    processes for this run's database), each process's last reading kept after it exits."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[int, float]] = {}

    def sample(self, group: str, pids: list[int]) -> None:
        got = self.seen.setdefault(group, {})
        for pid in pids:
            got[pid] = max(got.get(pid, 0.0), cpu_seconds(pid))

    def totals(self) -> dict[str, float]:
        return {g: sum(v.values()) for g, v in self.seen.items()}


class RssMeter:
    """Peak RSS (VmHWM, MB) of every process of a group, each process's last reading kept."""

    def __init__(self) -> None:
        self.peak: dict[str, dict[int, float]] = {}

    def sample(self, group: str, pids: list[int]) -> None:
        got = self.peak.setdefault(group, {})
        for pid in pids:
            got[pid] = max(got.get(pid, 0.0), hwm_mb(pid))

    def largest(self) -> dict[str, float]:
        """Per group, its largest process's peak."""
        return {g: max(v.values(), default=0.0) for g, v in self.peak.items()}


class Workers:
    def __init__(self, env: dict[str, str], count: int, concurrency: int, log: Path) -> None:
        self.log = log.open("ab")
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "paperalerts",
                    "worker",
                    "--concurrency",
                    str(concurrency),
                    "--loglevel",
                    "warning",
                ],
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
            for _ in range(count)
        ]
        self.peak: dict[int, float] = {}

    def sample(self) -> None:
        for w in self.procs:
            for pid in process_tree(w.pid):
                self.peak[pid] = max(self.peak.get(pid, 0.0), hwm_mb(pid))

    def stop(self) -> None:
        self.sample()
        for w in self.procs:
            w.send_signal(signal.SIGTERM)
        for w in self.procs:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(10)
        self.log.close()
