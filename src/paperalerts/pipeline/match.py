"""The match step: unmatched paper events x the rules of active subscribers -> match rows.

Each batch is one transaction: the match rows and the events' `matched_at` cursor are written
together, so a crash mid-batch re-matches the batch and the unique (subscriber, paper) row keeps it
to one match. An updated paper counts only through rules whose verdict turned from false to true
because of the change (`core/rules/verdicts.py`): `upvotes:>=20` fires when a paper crosses 20,
never for a paper that matched all along (a source's baseline included).
The compiled index is cached and rebuilt only when the rules version moves. A batch is matched a
paper at a time and its rows written in chunks as they come, so memory stays flat however many
subscribers a paper reaches.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.diff import previous_from_changes
from paperalerts.core.papers import Paper
from paperalerts.core.rules import Match as RuleMatch
from paperalerts.core.rules import (
    ParsedRules,
    RuleIndex,
    compile_rules,
    explanation_json,
    term_frequencies,
    turned_true,
)
from paperalerts.core.rules.label import display_name
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction

RuleKey = str  # "r<rule id>" for a subscriber's rule, "t<topic id>" for a topic
WRITE_ROWS = 5000  # match rows checked and inserted together


@dataclass(frozen=True)
class RuleInfo:
    """Who a compiled rule belongs to, and how to name it in an explanation."""

    rule_id: int | None
    topic_id: int | None
    name: str
    query: str
    subscribers: frozenset[int]


@dataclass
class CompiledRules:
    version: int
    index: RuleIndex
    info: dict[str, RuleInfo]


@dataclass
class IndexCache:
    """Holds the compiled rules between batches and calls; rebuilt when the version moves."""

    compiled: CompiledRules | None = None
    builds: int = 0
    # rule text -> its parse, kept across builds: a rebuild after one rule changed parses one
    parsed: ParsedRules = field(default_factory=ParsedRules)

    def get(self, session: Session, now: datetime) -> CompiledRules:
        version = repo.rules_version(session)
        if self.compiled is None or self.compiled.version != version:
            self.compiled = build_index(session, version, now, self.parsed)
            self.builds += 1
        return self.compiled


def build_index(
    session: Session, version: int, now: datetime, parsed: ParsedRules | None = None
) -> CompiledRules:
    """Compile every enabled rule and topic. Statuses are checked when matching, so pausing or
    unsubscribing needs no rebuild; term rarity comes from the last 30 days of papers."""
    info: dict[str, RuleInfo] = {}
    queries: list[tuple[str, str]] = []
    for rule in session.scalars(select(m.Rule).where(m.Rule.enabled.is_(True))):
        key = f"r{rule.id}"
        info[key] = RuleInfo(
            rule.id, None, display_name(rule.name, rule.query), rule.query,
            frozenset({rule.subscriber_id}),
        )
        queries.append((key, rule.normalized or rule.query))
    followers: dict[int, set[int]] = defaultdict(set)
    for sid, tid in session.execute(
        select(m.SubscriberTopic.subscriber_id, m.SubscriberTopic.topic_id)
    ):
        followers[tid].add(sid)
    for topic in session.scalars(select(m.Topic).where(m.Topic.enabled.is_(True))):
        if followers.get(topic.id):
            key = f"t{topic.id}"
            info[key] = RuleInfo(
                None, topic.id, topic.name, topic.query, frozenset(followers[topic.id])
            )
            queries.append((key, topic.normalized or topic.query))
    recent = session.scalars(
        select(m.Paper).where(m.Paper.first_seen_at >= now - timedelta(days=30)).limit(5000)
    )
    freq = term_frequencies(repo.paper_value(p) for p in recent)
    return CompiledRules(version, compile_rules(queries, freq, parsed), info)


@dataclass(frozen=True)
class MatchOutcome:
    events: int = 0
    matches: int = 0  # new match rows
    batches: int = 0


def explain(compiled: CompiledRules, hits: list[RuleMatch]) -> dict[int, dict[str, Any]]:
    """Per subscriber, the stored explanation of one paper: every rule of theirs that matched."""
    per_sub: dict[int, dict[str, Any]] = {}
    for hit in hits:
        ri = compiled.info[str(hit.rule)]
        entry = {
            "rule_id": ri.rule_id,
            "topic_id": ri.topic_id,
            "name": ri.name,
            "query": ri.query,
            **explanation_json(hit),
        }
        for sub in ri.subscribers:
            per_sub.setdefault(sub, {"rules": []})["rules"].append(entry)
    return per_sub


def match_new_events(
    factory: sessionmaker[Session],
    *,
    now: datetime,
    cache: IndexCache | None = None,
    batch_size: int = 500,
    max_batches: int | None = None,
) -> MatchOutcome:
    """Consume unmatched events in batches until none is left (or `max_batches`)."""
    cache = cache or IndexCache()
    total_events = total_matches = batches = 0
    while max_batches is None or batches < max_batches:
        with transaction(factory) as s:
            q = (
                select(m.PaperEvent)
                .where(m.PaperEvent.matched_at.is_(None))
                .order_by(m.PaperEvent.id)
                .limit(batch_size)
            )
            if s.bind is not None and s.bind.dialect.name == "postgresql":
                # Two matchers never take the same events; each waits for nothing.
                q = q.with_for_update(skip_locked=True)
            evs = list(s.scalars(q))
            if not evs:
                break
            compiled = cache.get(s, now)
            total_matches += _match_batch(s, compiled, evs, now)
            for ev in evs:
                ev.matched_at = now
            total_events += len(evs)
            batches += 1
    return MatchOutcome(total_events, total_matches, batches)


def _previous(s: Session, evs: list[m.PaperEvent], papers: dict[str, Paper]) -> dict[str, Paper]:
    """Per updated paper of the batch, its values before its first event here (a paper with a
    "new" event first is new: absent). Events stored before they kept their previous values get
    them rebuilt from their `changes`."""
    out: dict[str, Paper] = {}
    seen: set[str] = set()
    names: dict[int, str] = {}
    for ev in sorted(evs, key=lambda e: e.id):
        pid = ev.paper_id
        if pid in seen or pid not in papers:
            continue
        seen.add(pid)
        if ev.kind != "updated":
            continue
        if ev.previous is not None:
            out[pid] = Paper.from_json(ev.previous)
            continue
        if ev.source_id is not None and ev.source_id not in names:
            names[ev.source_id] = s.get_one(m.Source, ev.source_id).name
        out[pid] = previous_from_changes(papers[pid], ev.changes, names.get(ev.source_id or -1))
    return out


def _match_batch(
    s: Session, compiled: CompiledRules, evs: list[m.PaperEvent], now: datetime
) -> int:
    """Match one batch of events, a paper at a time: its hits and their explanations are
    written in chunks of `WRITE_ROWS` rows as they come, so a batch holds one paper's hits and
    one chunk of rows, not every hit and row of the batch (~1M rows at 100k subscribers).
    Returns the number of new match rows."""
    first_event: dict[str, int] = {}
    for ev in evs:
        first_event.setdefault(ev.paper_id, ev.id)
    papers: dict[str, Paper] = repo.paper_values(s, first_event)
    previous = _previous(s, evs, papers)
    active: set[int] | None = None  # read at the first hit: a batch with none needs no read
    rows: list[dict[str, Any]] = []
    made = 0
    for pid, paper in papers.items():
        hits = turned_true(compiled.index, [paper], previous)
        if not hits:
            continue
        if active is None:
            active = _active(s, compiled)
        for sub, expl in explain(compiled, hits).items():
            if sub not in active:
                continue
            first = expl["rules"][0]
            rows.append({
                "subscriber_id": sub,
                "paper_id": pid,
                "rule_id": first["rule_id"],
                "topic_id": first["topic_id"],
                "explanation": expl,
                "event_id": first_event[pid],
                "matched_at": now,
            })
            if len(rows) >= WRITE_ROWS:
                made += _write(s, rows)
                rows = []
    made += _write(s, rows)
    s.flush()
    return made


def _active(s: Session, compiled: CompiledRules) -> set[int]:
    """The active subscribers among those with a compiled rule or topic."""
    candidates = sorted({sub for info in compiled.info.values() for sub in info.subscribers})
    active: set[int] = set()
    # Chunked: one IN list of every subscriber passes PostgreSQL's 65,535-parameter cap.
    for i in range(0, len(candidates), 5000):
        active.update(
            s.scalars(
                select(m.Subscriber.id).where(
                    m.Subscriber.status == "active", m.Subscriber.id.in_(candidates[i : i + 5000])
                )
            )
        )
    return active


def _write(s: Session, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose (subscriber, paper) has no match yet; how many that was."""
    existing: set[tuple[int, str]] = set()
    for i in range(0, len(rows), 300):
        chunk = [(r["subscriber_id"], r["paper_id"]) for r in rows[i : i + 300]]
        q = select(m.Match.subscriber_id, m.Match.paper_id).where(
            tuple_(m.Match.subscriber_id, m.Match.paper_id).in_(chunk)
        )
        existing.update((a, b) for a, b in s.execute(q))
    # at most once, ever: an update re-matching a delivered paper adds nothing
    new = [r for r in rows if (r["subscriber_id"], r["paper_id"]) not in existing]
    if new:
        # one executemany, not an ORM object per row: the ORM spends most of its time building
        # (and the driver parsing) huge multi-row statements
        s.execute(insert(m.Match), new)
    return len(new)
