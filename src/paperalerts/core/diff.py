"""Pure diffing: a scrape's entries against everything ever seen, and a health verdict.

Nothing here touches the database or the clock: the pipeline loads what is known about the entries'
ids, passes it in, and writes back what comes out.

- `assess` decides whether a scrape is healthy enough to diff at all. A scrape that parsed zero
  entries where the source had some, or fewer than half of its recent median, is *rejected*: a
  broken page must not look like "everything vanished" and then "everything is new" on recovery.
- `diff` compares against the per-source memory of every paper ever listed, not against the last
  page, so an entry that drops off and comes back is not new.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from paperalerts.core.papers import VALUE_FIELDS, Paper

# Fields whose change makes a known paper "updated": every field a rule can look at, so a
# threshold crossed or a corrected abstract is matched again (and news only where a rule's
# verdict turned, see core/rules/verdicts.py).
TRACKED_FIELDS = ("title", "abstract", "authors", "organization", "upvotes", "comments")
RECENT_WINDOW = 7
# What a later sighting may update: everything but the identity (id) and the first source.
MERGED_FIELDS = tuple(f for f in VALUE_FIELDS if f not in ("id", "source"))

Status = Literal["ok", "rejected", "quiet"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a parsed scrape may be diffed. `status` is ok, rejected (with `reason`) or quiet."""

    status: Status
    reason: str | None = None

    @property
    def healthy(self) -> bool:
        return self.status != "rejected"


def assess(count: int, recent_counts: Sequence[int], *, quiet_day: bool = False) -> Verdict:
    """Judge a scrape of `count` entries against the entry counts of recent healthy scrapes.

    `recent_counts` are the counts of the last healthy non-empty snapshots, newest first; only the
    newest `RECENT_WINDOW` are used. An empty feed on one of its skip days is `quiet`, not rejected.
    """
    recent = [c for c in recent_counts[:RECENT_WINDOW] if c > 0]
    if count == 0:
        if quiet_day:
            return Verdict("quiet", "no announcement today")
        if recent:
            return Verdict("rejected", f"parsed 0 entries where the source had {recent[0]}")
        return Verdict("ok")
    if recent:
        median = statistics.median(recent)
        if count < median / 2:
            return Verdict(
                "rejected",
                f"parsed {count} entries, fewer than half of the recent median {median:g}",
            )
    return Verdict("ok")


@dataclass(frozen=True, slots=True)
class Known:
    """What is stored about a paper: its current values and the ids of sources that listed it."""

    paper: Paper
    source_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class Change:
    """A paper to store, and how it differs from what was stored (empty for a new paper)."""

    paper: Paper
    kind: Literal["new", "updated", "unchanged"]
    changes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiffResult:
    new: tuple[Change, ...]
    updated: tuple[Change, ...]
    unchanged: tuple[Change, ...]
    gone: tuple[str, ...]

    @property
    def entry_ids(self) -> list[str]:
        return [c.paper.id for c in (*self.new, *self.updated, *self.unchanged)]

    @property
    def to_store(self) -> tuple[Change, ...]:
        """Every entry of the scrape, merged with what was known; all are written back."""
        return (*self.new, *self.updated, *self.unchanged)


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != () and value != []


def merge_paper(old: Paper, new: Paper) -> Paper:
    """`old` updated with what `new` reports. A source that does not carry a field (arXiv has no
    upvotes) never blanks it; the id and the first source are kept; extras are merged."""
    updates: dict[str, Any] = {}
    for name in MERGED_FIELDS:
        value = getattr(new, name)
        if _present(value) and value != getattr(old, name):
            updates[name] = value
    merged = replace(old, **updates) if updates else old
    if new.extra:
        merged = replace(merged, extra={**old.extra, **new.extra})
    return merged


def dedupe(entries: Iterable[Paper]) -> list[Paper]:
    """Entries in page order, each id once (the first listing wins; later ones are merged in)."""
    by_id: dict[str, Paper] = {}
    for p in entries:
        by_id[p.id] = merge_paper(by_id[p.id], p) if p.id in by_id else p
    return list(by_id.values())


def diff(
    entries: Sequence[Paper],
    known: Mapping[str, Known],
    source_id: int,
    previous_ids: Collection[str] = (),
) -> DiffResult:
    """Split a healthy scrape's entries into new, updated and unchanged papers.

    - new: never seen before from any source;
    - updated: seen before, and either this source lists it for the first time (it entered the
      trending page), or a tracked field (title, abstract, authors, organization, upvotes,
      comments) changed;
    - unchanged: seen before from this source with the same tracked values (also an entry that
      dropped off the page and came back);
    - gone: ids of `previous_ids` (the last healthy snapshot) this scrape no longer lists.
    """
    new: list[Change] = []
    updated: list[Change] = []
    unchanged: list[Change] = []
    for paper in dedupe(entries):
        k = known.get(paper.id)
        if k is None:
            new.append(Change(paper, "new"))
            continue
        merged = merge_paper(k.paper, paper)
        changes: dict[str, Any] = {
            name: [getattr(k.paper, name), getattr(merged, name)]
            for name in TRACKED_FIELDS
            if getattr(merged, name) != getattr(k.paper, name)
        }
        if source_id not in k.source_ids:
            changes["listed_by"] = source_id
        if changes:
            updated.append(Change(merged, "updated", changes))
        else:
            unchanged.append(Change(merged, "unchanged"))
    listed = {c.paper.id for c in (*new, *updated, *unchanged)}
    gone = tuple(i for i in previous_ids if i not in listed)
    return DiffResult(tuple(new), tuple(updated), tuple(unchanged), gone)


def previous_from_changes(
    current: Paper, changes: Mapping[str, Any], listed_by: str | None = None
) -> Paper:
    """An update's paper before the change, rebuilt from its recorded `changes` (``field: [old,
    new]``) for events stored before they kept the previous values: `current` with the old
    values put back, and without the source `listed_by` names when that listing was the change."""
    olds: dict[str, Any] = {}
    for name, pair in changes.items():
        if name in TRACKED_FIELDS and isinstance(pair, list | tuple) and len(pair) == 2:
            olds[name] = tuple(pair[0] or ()) if name == "authors" else pair[0]
    prev = replace(current, **olds) if olds else current
    if "listed_by" in changes and listed_by is not None:
        names = [n for n in prev.extra.get("sources", ()) if n != listed_by]
        prev = replace(prev, extra={**prev.extra, "sources": names})
    return prev
