"""The hostile-input fuzz run (issue 17): mutated fixture files through every parser, random
selector sets checked and run, and API requests (schemathesis over every operation, plus
hostile selectors and addresses posted where they are saved). Prints counts per part, every
uncaught exception, the slowest parse, and how many parses took over 2 s of CPU (the thread's
CPU time: on a shared machine wall time says more about the neighbours than about the input;
the slowest wall time is printed too).

    .venv/bin/python benchmarks/fuzz_hostile.py [--files 2000] [--selectors 2000]
        [--api-examples 50] [--seed 17]

Fixtures are read from ../shared/fixtures (PAPERALERTS_FIXTURES_DIR), never copied. Exit status
1 when anything crashed, a parse took over 2 s, or the API answered 5xx.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fuzz_support import (  # noqa: E402 -- after the path insert
    KIND_FIXTURES,
    Outcome,
    fixture_files,
    mutate,
    parse_outcome,
    selector_set,
    selectors_outcome,
)

SLOW = 2.0
FIXTURES = Path(os.environ.get("PAPERALERTS_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))


def _report(title: str, outcomes: list[tuple[str, Outcome]]) -> bool:
    """Print one part's counts; True when it is clean (no crash, nothing over SLOW)."""
    counts = collections.Counter(o.status for _, o in outcomes)
    slow = [(label, o) for label, o in outcomes if o.seconds > SLOW]
    worst = max(outcomes, key=lambda x: x[1].seconds, default=None)
    worst_wall = max((o.wall for _, o in outcomes), default=0.0)
    print(f"{title}: {len(outcomes)} cases: " + ", ".join(
        f"{k} {counts[k]}" for k in ("ok", "refused", "crash"))
        + f"; over {SLOW:g} s CPU: {len(slow)}; slowest wall time {worst_wall:.2f} s")
    if worst is not None:
        print(f"  slowest: {worst[1].seconds:.3f} s CPU ({worst[0]}: {worst[1].status}"
              f"{' - ' + worst[1].detail[:100] if worst[1].detail else ''})")
    for label, o in [x for x in outcomes if x[1].status == "crash"][:20]:
        print(f"  CRASH {label}: {o.detail}")
    for label, o in slow[:10]:
        print(f"  SLOW {o.seconds:.2f} s {label}: {o.status} {o.detail[:100]}")
    return counts["crash"] == 0 and not slow


def fuzz_parsers(files: int, r: random.Random) -> list[tuple[str, Outcome]]:
    kinds = sorted(KIND_FIXTURES)
    bodies = {k: [(p.name, p.read_bytes()) for p in fixture_files(FIXTURES, k)] for k in kinds}
    out = []
    for i in range(files):
        kind = kinds[i % len(kinds)]
        name, body = r.choice(bodies[kind])
        out.append((f"{kind} {name} #{i}", parse_outcome(kind, mutate(body, r))))
    return out


def fuzz_selectors(n: int, r: random.Random) -> list[tuple[str, Outcome]]:
    page = (FIXTURES / "hf_papers_html" / "hf_papers_daily_2026-09-28.html").read_bytes()
    out = []
    for i in range(n):
        chosen = selector_set(r)
        out.append((f"set #{i} {chosen}", selectors_outcome(chosen, page)))
    return out


def fuzz_api(examples: int, r: random.Random) -> tuple[int, int, list[str]]:
    """schemathesis over every operation, then hostile selectors and addresses posted to the
    endpoints that save them; (cases, 5xx answers, the first few 5xx)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    sys.path.insert(0, str(REPO / "tests"))
    from fuzz_support import selector
    from paperalerts.edges.db import make_engine, session_factory
    from paperalerts.edges.db.engine import upgrade
    from web_support import WebEnv, add_subscriber, api_token

    engine = make_engine(f"sqlite:///{tempfile.mkdtemp(prefix='fuzz-')}/fuzz.db")
    upgrade(engine)
    factory = session_factory(engine)
    env = WebEnv.start(factory)
    auth = api_token(env)
    add_subscriber(factory, "seed@example.org", rules=("graph",))
    cases, errors = 0, []
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", env.app)
    for op in (o.ok() for o in schema.get_all_operations()):

        @given(case=op.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            nonlocal cases
            cases += 1
            response = case.call(headers=auth)
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        run()
    hostile_emails = ["=?utf-8?q?a?=@example.org", "a@b", "\u00e9@example.org",
                      "x" * 300 + "@example.org", "a\r\nBcc: x@example.org"]
    for i in range(examples * 10):
        body = {"name": f"s{i}", "kind": "html", "url": "https://list.example/t",
                "selectors": {"item": selector(r), "title": selector(r), "link": selector(r)}}
        resp = env.client.post("/api/v1/sources", headers=auth, json=body)
        cases += 1
        if resp.status_code >= 500:
            errors.append(f"POST /sources {body['selectors']}: {resp.status_code}")
        email = r.choice(hostile_emails) if i % 2 else f"u{i}+{selector(r)[:10]}@example.org"
        resp = env.client.post("/api/v1/subscribers", headers=auth, json={"email": email})
        cases += 1
        if resp.status_code >= 500:
            errors.append(f"POST /subscribers {email!r}: {resp.status_code}")
    return cases, len(errors), errors[:20]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000, help="mutated files (all kinds)")
    ap.add_argument("--selectors", type=int, default=2000, help="random selector sets")
    ap.add_argument("--api-examples", type=int, default=50, help="schemathesis cases per op")
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()
    r = random.Random(args.seed)
    start = time.perf_counter()
    clean = _report("parsers (mutated fixtures)", fuzz_parsers(args.files, r))
    clean &= _report("selector sets (save, then run)", fuzz_selectors(args.selectors, r))
    if args.api_examples:
        cases, bad, errors = fuzz_api(args.api_examples, r)
        print(f"api: {cases} requests; 5xx: {bad}")
        for e in errors:
            print(f"  5XX {e}")
        clean &= bad == 0
    print(f"seed {args.seed}; {time.perf_counter() - start:.0f} s; "
          + ("clean" if clean else "NOT CLEAN"))
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
