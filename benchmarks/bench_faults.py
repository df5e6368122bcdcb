"""The fault matrix of issue 21: every fault row, run and printed as one table.

    .venv/bin/python benchmarks/bench_faults.py [--n 1000]

Each row is a function in a module of its own (a fault family per module: `faults_dispatch.py`,
the send-hour race and the relay outage; `faults_lease.py`, leases under a slow relay and the
shared rate bucket, PostgreSQL cut, workers SIGKILLed, Redis down, ticks under long mail tasks,
on real workers) taking the number of daily
subscribers and returning a `faults_dispatch.Row`; each measures the old behaviour as its baseline
in the same run. Add a family by appending its rows to `ROWS` below.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import faults_dispatch
import faults_lease
from faults_dispatch import Row, print_table

ROWS: list[Callable[[int], Row]] = [*faults_dispatch.ROWS, *faults_lease.ROWS.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description="Run every fault row and print the fault matrix.")
    ap.add_argument("--n", type=int, default=1000, help="daily subscribers per row")
    args = ap.parse_args()
    logging.getLogger("paperalerts").setLevel(logging.ERROR)  # faults log every failure
    print_table(row(args.n) for row in ROWS)  # each row printed as it finishes


if __name__ == "__main__":
    main()
