"""Queries shared by the pipeline steps, the CLI and the web: rows in, values out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, event, func, select, update
from sqlalchemy.orm import ORMExecuteState, Session

from paperalerts.core.diff import Known
from paperalerts.core.papers import Paper
from paperalerts.edges.db import models as m


def paper_value(
    row: m.Paper, source_names: Sequence[str] = (), source_kinds: Sequence[str] = ()
) -> Paper:
    """The pure value of a stored paper. `source_names` go into extra["sources"] (for `source:`
    and the digest's freshness line), their kinds into extra["source_kinds"] (which links the
    paper has, e.g. a Hugging Face page only when an hf-* source listed it)."""
    extra = dict(row.extra or {})
    if source_names:
        extra["sources"] = list(source_names)
    if source_kinds:
        extra["source_kinds"] = list(dict.fromkeys(source_kinds))
    return Paper(
        id=row.id,
        title=row.title,
        source=str(extra.get("first_source", "")),
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
        url=row.url,
        pdf_url=row.pdf_url,
        code_url=row.code_url,
        organization=row.organization,
        published=row.published,
        upvotes=row.upvotes,
        comments=row.comments,
        keywords=tuple(row.keywords or ()),
        extra=extra,
    )


def write_paper(row: m.Paper, paper: Paper, now: datetime) -> None:
    """Copy a paper value's fields onto its row."""
    row.title = paper.title
    row.abstract = paper.abstract
    row.authors = list(paper.authors)
    row.url = paper.url
    row.pdf_url = paper.pdf_url
    row.code_url = paper.code_url
    row.organization = paper.organization
    row.published = paper.published
    row.upvotes = paper.upvotes
    row.comments = paper.comments
    row.keywords = list(paper.keywords)
    extra = dict(paper.extra)
    extra.pop("sources", None)
    extra.setdefault("first_source", paper.source)
    row.extra = extra
    row.updated_at = now


def new_paper_row(paper: Paper, now: datetime) -> m.Paper:
    row = m.Paper(id=paper.id, title=paper.title, first_seen_at=now)
    write_paper(row, paper, now)
    return row


def load_known(session: Session, ids: Collection[str]) -> dict[str, tuple[m.Paper, Known]]:
    """Stored rows and `Known` values for the given ids (absent ids are simply missing)."""
    if not ids:
        return {}
    rows: dict[str, m.Paper] = {}
    id_list = list(ids)
    # Chunked: SQLite caps the number of bound parameters in one statement.
    for i in range(0, len(id_list), 500):
        chunk = id_list[i : i + 500]
        for row in session.scalars(select(m.Paper).where(m.Paper.id.in_(chunk))):
            rows[row.id] = row
    seen: dict[str, set[int]] = defaultdict(set)
    found = list(rows)
    for i in range(0, len(found), 500):
        chunk = found[i : i + 500]
        q = select(m.PaperSource.paper_id, m.PaperSource.source_id).where(
            m.PaperSource.paper_id.in_(chunk)
        )
        for pid, sid in session.execute(q):
            seen[pid].add(sid)
    return {
        pid: (row, Known(paper_value(row), frozenset(seen.get(pid, ()))))
        for pid, row in rows.items()
    }


def recent_healthy_counts(session: Session, source_id: int, limit: int = 7) -> list[int]:
    """Entry counts of the newest healthy, non-empty snapshots of a source, newest first."""
    q = (
        select(m.Snapshot.entry_count)
        .where(m.Snapshot.source_id == source_id, m.Snapshot.status == "ok")
        .where(m.Snapshot.entry_count > 0)
        .order_by(m.Snapshot.fetched_at.desc(), m.Snapshot.id.desc())
        .limit(limit)
    )
    return list(session.scalars(q))


def last_healthy_snapshot(session: Session, source_id: int) -> m.Snapshot | None:
    q = (
        select(m.Snapshot)
        .where(m.Snapshot.source_id == source_id, m.Snapshot.status == "ok")
        .order_by(m.Snapshot.fetched_at.desc(), m.Snapshot.id.desc())
        .limit(1)
    )
    return session.scalars(q).first()


def source_by_name(session: Session, name: str) -> m.Source | None:
    return session.scalars(select(m.Source).where(m.Source.name == name)).first()


RULES_VERSION = "rules_version"


def rules_version(session: Session) -> int:
    """The counter every rule or topic change bumps; the matcher rebuilds when it moves."""
    row = session.get(m.State, RULES_VERSION)
    return int(row.value) if row else 0


def bump_rules_version(session: Session) -> int:
    """Record that rules changed (call in the same transaction as the change)."""
    row = session.get(m.State, RULES_VERSION)
    if row is None:
        row = m.State(key=RULES_VERSION, value="0")
        session.add(row)
    row.value = str(int(row.value) + 1)
    return int(row.value)


_WATCHED_MODELS = (m.Rule, m.Topic, m.SubscriberTopic)
_WATCHED_TABLES = frozenset(model.__tablename__ for model in _WATCHED_MODELS)


@event.listens_for(Session, "before_flush")
def _bump_on_rule_changes(session: Session, _ctx: object, _instances: object) -> None:
    """Any flush that adds, changes or deletes a rule, a topic or a topic subscription moves the
    rules version in the same transaction, so no writer can forget to and leave the matcher on a
    stale index (a missed paper, or a paper matched by a rule that is gone)."""
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(o, _WATCHED_MODELS) for o in changed):
        bump_rules_version(session)


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_rule_changes(state: ORMExecuteState) -> None:
    """The same guard for bulk INSERT / UPDATE / DELETE statements run through a session (they
    never reach the flush hook): e.g. unfollowing topics deletes follows in one statement."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in _WATCHED_TABLES:
        bump_rules_version(state.session)


def _listings(session: Session, ids: Collection[str]) -> dict[str, list[tuple[str, str]]]:
    """(name, kind) of the sources that listed each paper, first listing first."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    id_list = list(ids)
    for i in range(0, len(id_list), 500):
        q = (
            select(m.PaperSource.paper_id, m.Source.name, m.Source.kind)
            .join(m.Source, m.Source.id == m.PaperSource.source_id)
            .where(m.PaperSource.paper_id.in_(id_list[i : i + 500]))
            .order_by(m.PaperSource.first_seen_at)
        )
        for pid, name, kind in session.execute(q):
            out[pid].append((name, kind))
    return out


def paper_values(session: Session, ids: Collection[str]) -> dict[str, Paper]:
    """Stored papers as values, with their source names and kinds, keyed by id."""
    listed = _listings(session, ids)
    id_list = list(ids)
    out: dict[str, Paper] = {}
    for i in range(0, len(id_list), 500):
        for row in session.scalars(select(m.Paper).where(m.Paper.id.in_(id_list[i : i + 500]))):
            found = listed.get(row.id, [])
            out[row.id] = paper_value(row, [n for n, _ in found], [k for _, k in found])
    return out


def audit(
    session: Session,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor: str = "cli",
) -> None:
    """One audit row (who changed what, before and after) in the caller's transaction."""
    session.add(
        m.AuditLog(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            before=before,
            after=after,
        )
    )


def audit_rows(session: Session, *, entity: str = "", entity_id: str = "", actor: str = "",
               limit: int = 200, offset: int = 0) -> list[m.AuditLog]:
    """Audit rows newest first, filtered by entity, its id and a substring of the actor (the
    admin's audit page and the API)."""
    q = select(m.AuditLog)
    if entity:
        q = q.where(m.AuditLog.entity == entity)
    if entity_id:
        q = q.where(m.AuditLog.entity_id == entity_id)
    if actor:
        q = q.where(m.AuditLog.actor.contains(actor, autoescape=True))
    return list(session.scalars(q.order_by(m.AuditLog.id.desc()).offset(offset).limit(limit)))


def delete_source(session: Session, source: m.Source, actor: str = "cli") -> dict[str, int]:
    """Delete a source in the caller's transaction, keeping papers and history consistent:

    - its snapshots and its ``paper_source`` rows (the per-source memory of what it listed) go:
      they describe a source that no longer exists;
    - papers stay, even those only this source listed: matches, sent digests, their online
      views and rule previews refer to them (a ``source:<name>`` rule stops matching them);
    - paper events stay, with no source and no snapshot: they are the matcher's history and
      what match rows point to;
    - an announced health incident of the source is forgotten, not reported as recovered.

    Writes one audit row with the source's settings and what was removed; returns the counts.
    """
    sid = source.id
    counts = {
        "snapshots": int(session.scalar(
            select(func.count()).select_from(m.Snapshot).where(m.Snapshot.source_id == sid)
        ) or 0),
        "paper_sources": int(session.scalar(
            select(func.count()).select_from(m.PaperSource).where(m.PaperSource.source_id == sid)
        ) or 0),
    }
    session.execute(update(m.PaperEvent).where(m.PaperEvent.source_id == sid)
                    .values(source_id=None, snapshot_id=None)
                    .execution_options(synchronize_session=False))
    snapshots = select(m.Snapshot.id).where(m.Snapshot.source_id == sid).scalar_subquery()
    session.execute(update(m.PaperEvent).where(m.PaperEvent.snapshot_id.in_(snapshots))
                    .values(snapshot_id=None).execution_options(synchronize_session=False))
    session.execute(delete(m.PaperSource).where(m.PaperSource.source_id == sid)
                    .execution_options(synchronize_session=False))
    session.execute(delete(m.Snapshot).where(m.Snapshot.source_id == sid)
                    .execution_options(synchronize_session=False))
    session.execute(delete(m.State).where(m.State.key == f"incident:source:{source.name}")
                    .execution_options(synchronize_session=False))
    before = {"name": source.name, "kind": source.kind, "url": source.url,
              "every": source.every_seconds, "enabled": source.enabled}
    audit(session, "delete", "source", sid, before, None, actor)
    session.delete(source)
    session.flush()
    return counts
