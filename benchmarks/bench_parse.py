"""Parse speed per source kind on the shared fixtures, and hf-papers against a BeautifulSoup
baseline in the same run.

    .venv/bin/python benchmarks/bench_parse.py [--repeats N]

For every fixture: the median time of `paperalerts.core.sources.parse(kind, body, url)` over N runs.
Baseline: ``BeautifulSoup(body, "html.parser")``, find the ``data-target="DailyPapers"`` div and
``json.loads`` its ``data-props`` — the usual way scrapers read that page — on the same bytes.
Goal: hf-papers >= 5x faster than that baseline (while doing strictly more: building Papers).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from paperalerts.core.sources import parse

REPO = Path(__file__).resolve().parent.parent
KIND_OF_FOLDER = {
    "hf_papers_html": "hf-papers",
    "hf_api_daily_papers": "hf-api",
    "arxiv_rss": "arxiv",
    "arxiv_api": "arxiv",
    "hf_papers_rss_thirdparty": "feed",
}
DAILY_PAGE = "hf_papers_html/hf_papers_daily_2026-09-28.html"
GOAL = 5.0


def fixtures_dir() -> Path:
    """PAPERALERTS_FIXTURES_DIR, else ../shared/fixtures beside the repo; exit when absent."""
    path = Path(os.environ.get("PAPERALERTS_FIXTURES_DIR") or REPO.parent / "shared" / "fixtures")
    if not path.is_dir():
        sys.exit(
            f"bench_parse: fixtures folder {path} not found; "
            "set PAPERALERTS_FIXTURES_DIR to the shared fixtures folder"
        )
    return path


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `fn` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bs4_baseline(body: bytes) -> list[Any]:
    """The baseline: a full html.parser soup, the DailyPapers div, its props decoded."""
    soup = BeautifulSoup(body, "html.parser")
    div = soup.find("div", attrs={"data-target": "DailyPapers"})
    if div is None:
        raise SystemExit("bench_parse: baseline found no DailyPapers div")
    props = json.loads(str(div["data-props"]))
    return list(props["dailyPapers"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per measurement")
    args = ap.parse_args()
    root = fixtures_dir()

    print(f"fixtures: {root}   repeats: {args.repeats} (median)")
    print(f"{'kind':<10} {'file':<66} {'KB':>6} {'papers':>6} {'ms':>8}")
    per_kind: dict[str, list[float]] = {}
    for path in sorted(root.glob("*/*")):
        kind = KIND_OF_FOLDER.get(path.parent.name)
        if kind is None or not path.is_file():
            continue
        body = path.read_bytes()
        url = f"file:{path.name}"
        count = len(parse(kind, body, url))
        ms = median_ms(functools.partial(parse, kind, body, url), args.repeats)
        per_kind.setdefault(kind, []).append(ms)
        print(f"{kind:<10} {path.name[:66]:<66} {len(body) / 1024:>6.0f} {count:>6} {ms:>8.2f}")

    print("\nmedian per page, by kind:")
    for kind, times in per_kind.items():
        print(f"  {kind:<10} {statistics.median(times):8.2f} ms  ({len(times)} files)")

    daily = root / DAILY_PAGE
    if not daily.is_file():
        sys.exit(f"bench_parse: {daily} not found; cannot run the hf-papers comparison")
    body = daily.read_bytes()
    ours_n, base_n = len(parse("hf-papers", body, "")), len(bs4_baseline(body))
    assert ours_n == base_n, (ours_n, base_n)
    ours = median_ms(lambda: parse("hf-papers", body, ""), args.repeats)
    base = median_ms(lambda: bs4_baseline(body), max(5, args.repeats // 3))
    # The fallback path (props missing): a full lxml parse and the rendered cards.
    no_props = re.sub(rb'(data-target="DailyPapers") data-props="[^"]*"', rb"\1", body)
    cards = median_ms(lambda: parse("hf-papers", no_props, ""), args.repeats)
    ratio = base / ours
    print(f"\nhf-papers daily page ({len(body) / 1024:.0f} KB, {ours_n} papers):")
    print(f"  paperalerts hf-papers parse           {ours:8.2f} ms")
    print(f"  paperalerts card fallback (no props)  {cards:8.2f} ms   ({base / cards:.1f}x)")
    print(f"  BeautifulSoup(html.parser) + props    {base:8.2f} ms   (baseline)")
    verdict = "meets" if ratio >= GOAL else "MISSES"
    print(f"  speed-up: {ratio:.1f}x  ({verdict} the {GOAL:.0f}x goal)")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
