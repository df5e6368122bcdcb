"""Property: whatever sequence of healthy and broken scrapes a source sees, no paper is lost and
none is counted new twice."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import fixture_file
from paperalerts.edges.db import make_engine, session_factory
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline import scrape_source

T0 = datetime(2026, 5, 8, 6, 0, tzinfo=UTC)


def universe() -> list[dict[str, object]]:
    items = json.loads(
        fixture_file("hf_api_daily_papers/hf_api_daily_papers_2026-05-08.json").read_bytes()
    )
    assert len(items) == 37
    return list(items)


# A step is either a listing (a subset of the universe, as index flags) or a broken page.
step = st.one_of(
    st.lists(st.booleans(), min_size=37, max_size=37).map(lambda flags: ("list", flags)),
    st.sampled_from(
        [
            ("broken", b"<html>Service Unavailable</html>"),
            ("broken", b"[]"),
            ("broken", b'{"error": "rate limited"}'),
        ]
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_no_paper_lost_or_double_counted(steps: list[tuple[str, object]]) -> None:
    """After any scrape sequence: stored papers == union of accepted listings; every paper first
    listed after the baseline has exactly one 'new' event; baseline papers have none."""
    items = universe()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'p.db'}")
        m.Base.metadata.create_all(engine)
        db = session_factory(engine)
        with transaction(db) as s:
            src = m.Source(name="hf", kind="hf-api", url="https://example.org/api")
            s.add(src)
            s.flush()
            sid = src.id
        accepted: set[str] = set()
        baseline: set[str] | None = None
        for i, (kind, payload) in enumerate(steps):
            if kind == "list":
                assert isinstance(payload, list)
                chosen = [it for it, keep in zip(items, payload, strict=True) if keep]
                body = json.dumps(chosen).encode()
            else:
                assert isinstance(payload, bytes)
                body, chosen = payload, []
            o = scrape_source(db, sid, fetcher=None, now=T0 + timedelta(hours=i), body=body)
            if o.status == "ok":
                listed = {str(it["paper"]["id"]) for it in chosen}  # type: ignore[index]
                if baseline is None and listed:
                    baseline = listed
                accepted |= listed
            else:
                assert kind == "broken" or o.status == "rejected"
        with db() as s:
            stored = set(s.scalars(select(m.Paper.id)))
            new_events = list(
                s.scalars(select(m.PaperEvent.paper_id).where(m.PaperEvent.kind == "new"))
            )
        engine.dispose()
    assert stored == accepted
    assert len(new_events) == len(set(new_events)), "a paper was counted new twice"
    assert set(new_events) == accepted - (baseline or set())
