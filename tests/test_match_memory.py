"""Flat memory in the match step (issue 18): a batch is matched a paper at a time and its rows
written in chunks, so memory follows one paper's subscribers, not the batch's rows (the
daily-run benchmark measures the resulting peak RSS at 100k subscribers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select

from conftest import fixture_file
from mail_fixtures import HF_DAY_2026_05_08, hf_papers
from paperalerts.core.rules import parse, to_text
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline import IndexCache, match_new_events

NOW = datetime(2026, 5, 8, 8, 0, tzinfo=UTC)
SUBSCRIBERS = 400
WRITE_ROWS = 1000


def _world(factory: Any) -> int:
    """SUBSCRIBERS subscribers with the rule "model" and one new event per fixture paper;
    returns the number of papers the rule matches (every subscriber gets each)."""
    papers = hf_papers(fixture_file(HF_DAY_2026_05_08))
    with transaction(factory) as s:
        for p in papers:
            s.add(repo.new_paper_row(p, NOW))
        s.flush()
        s.execute(insert(m.PaperEvent), [dict(paper_id=p.id, kind="new", at=NOW) for p in papers])
        s.execute(insert(m.Subscriber), [
            dict(id=i, email=f"r{i}@example.org", status="active", created_at=NOW)
            for i in range(1, SUBSCRIBERS + 1)
        ])  # fmt: skip
        s.execute(insert(m.Rule), [
            dict(subscriber_id=i, query="model", normalized=to_text(parse("model")), name="",
                 created_at=NOW, updated_at=NOW)
            for i in range(1, SUBSCRIBERS + 1)
        ])  # fmt: skip
    return sum(1 for p in papers if "model" in f"{p.title} {p.abstract}".lower())


class _Counting:
    """The compiled index, counting how many papers each `match` call is given."""

    def __init__(self, index: Any) -> None:
        self.index, self.sizes = index, []

    def match(self, papers: Any) -> Any:
        papers = list(papers)
        self.sizes.append(len(papers))
        return self.index.match(papers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)


def test_a_batch_is_matched_a_paper_at_a_time(factory: Any, monkeypatch: Any) -> None:
    """Thousands of match rows from one batch, written in chunks smaller than the batch: every
    row is written once, and the index is given one paper per call (the batch's hits and rows
    are never all held: at 100k subscribers they were ~1M rows and GBs)."""
    from paperalerts.pipeline import match as match_mod

    monkeypatch.setattr(match_mod, "WRITE_ROWS", WRITE_ROWS)
    hit = _world(factory)
    assert hit >= 10
    cache = IndexCache()
    with factory() as s:
        compiled = cache.get(s, NOW)
    counting = _Counting(compiled.index)
    compiled.index = counting  # type: ignore[assignment]
    out = match_new_events(factory, now=NOW, cache=cache)
    assert hit * SUBSCRIBERS > 3 * WRITE_ROWS
    assert out.matches == hit * SUBSCRIBERS
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(m.Match)) == hit * SUBSCRIBERS
    assert counting.sizes and max(counting.sizes) == 1
