"""One subscriber's matches -> a `Digest`: grouped, ranked, capped, with snippets. Pure.

Order: by rule (name, then id), then upvotes (most first, unknown last), then date (newest first,
unknown last), then paper id. A paper matched by several rules appears once, in the group of its
first rule, listing every rule that matched it. At most `max_items` papers are shown; the rest are
counted in ``more_count`` and reached through ``online_url``.

Every string shown is bounded (`TITLE_MAX`, `SNIPPET_WORDS`, ...) so one digest item has a bounded
size; `render.render_digest` additionally trims items to stay under the HTML size budget.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

from paperalerts.core.paper_links import Link, paper_links
from paperalerts.core.papers import Paper
from paperalerts.core.rules.label import why_terms
from paperalerts.core.schedule import Frequency, zone

Kind = Literal["digest", "alert"]
Health = Literal["ok", "degraded", "failing"]

TITLE_MAX: Final = 300
NAME_MAX: Final = 80
ORG_MAX: Final = 100
RULE_NAME_MAX: Final = 100
MAX_AUTHORS: Final = 6
MAX_TERMS: Final = 8
MAX_RULES_SHOWN: Final = 4
SNIPPET_WORDS: Final = 60
SNIPPET_WORDS_BEFORE: Final = 15
SNIPPET_MAX_CHARS: Final = 600
_WORD_RE: Final = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class SubscriberInfo:
    """What a digest shows of its recipient. `timezone` is an IANA name (times are shown there)."""

    email: str
    name: str = ""
    frequency: Frequency = "daily"
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class MatchedItem:
    """One match row: the paper, the rule that matched it and the engine's explanation
    ``{"terms": [str, ...], "hits": [{"field", "term", "start", "end"}, ...]}`` (offsets into the
    Paper's original field text)."""

    paper: Paper
    rule_id: int
    rule_name: str
    explanation: Mapping[str, Any]
    matched_at: datetime


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source's freshness, for the digest's "sources" lines."""

    name: str
    kind: str
    health: Health
    last_success_at: datetime | None
    failing_since: datetime | None
    new_count: int
    quiet_day: bool = False
    display_name: str = ""  # what subscribers read (core/source_names.py); else `name`


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of text; ``highlight`` marks a matched term (HTML <mark>, text *...*)."""

    text: str
    highlight: bool = False


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule that matched a paper, with the terms that matched in words (bounded), minus
    those its name already says."""

    id: int
    name: str
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One paper as shown. Text is bounded; `title` and `snippet` are segments whose
    ``highlight`` flag marks matched terms; `authors` is already "A, B, ... et al."."""

    paper_id: str
    title: tuple[Segment, ...]
    url: str
    authors: str
    organization: str | None
    upvotes: int | None
    comments: int | None
    date: date | None
    rules: tuple[RuleRef, ...]
    more_rules: int
    snippet: tuple[Segment, ...]
    links: tuple[Link, ...]
    sources: tuple[str, ...] = ()  # internal names of the sources that listed it (the footer)

    @property
    def title_text(self) -> str:
        return "".join(s.text for s in self.title)


@dataclass(frozen=True, slots=True)
class RuleGroup:
    rule_id: int
    rule_name: str
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class FreshnessLine:
    source: str
    health: Health
    text: str


@dataclass(frozen=True, slots=True)
class Recommended:
    """A paper no rule matched that the subscriber's feedback suggests (issue 13): shown under
    "You might also like" with the terms that scored it as the reason."""

    item: DigestItem
    terms: tuple[str, ...]
    score: float


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything the digest and alert templates show; no I/O left to do. `feedback` maps a
    paper id to its one-click feedback links (empty: no links shown)."""

    subscriber: SubscriberInfo
    kind: Kind
    now: datetime
    groups: tuple[RuleGroup, ...]
    total_papers: int
    more_count: int
    online_url: str
    freshness: tuple[FreshnessLine, ...] = field(default=())
    # what the freshness lines are made of, to make them again when trimmed
    source_statuses: tuple[SourceStatus, ...] = field(default=())
    feedback: Mapping[str, tuple[Link, ...]] = field(default_factory=dict)
    recommendations: tuple[Recommended, ...] = field(default=())

    @property
    def shown_papers(self) -> int:
        return sum(len(g.items) for g in self.groups)

    def trimmed(self, keep: int) -> Digest:
        """The same digest showing only its first `keep` papers (the rest join ``more_count``)."""
        groups: list[RuleGroup] = []
        left = max(keep, 0)
        for g in self.groups:
            if left <= 0:
                break
            groups.append(replace(g, items=g.items[:left]))
            left -= len(groups[-1].items)
        shown = sum(len(g.items) for g in groups)
        return replace(
            self,
            groups=tuple(groups),
            more_count=self.total_papers - shown,
            freshness=_freshness(
                self.source_statuses, groups, self.now, self.subscriber.timezone
            ) if self.source_statuses else self.freshness,
        )


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with an ellipsis if cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def highlight(
    text: str, spans: Sequence[tuple[int, int]], lo: int = 0, hi: int | None = None
) -> tuple[Segment, ...]:
    """``text[lo:hi]`` cut into segments, the parts covered by `spans` (clipped to the window,
    overlaps merged, spans outside ``0..len(text)`` ignored) marked as highlights."""
    hi = len(text) if hi is None else hi
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        if not 0 <= s < e <= len(text):
            continue
        s, e = max(s, lo), min(e, hi)
        if s >= e:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[Segment] = []
    pos = lo
    for s, e in merged:
        if s > pos:
            out.append(Segment(text[pos:s]))
        out.append(Segment(text[s:e], True))
        pos = e
    if pos < hi:
        out.append(Segment(text[pos:hi]))
    return tuple(out)


def snippet(text: str, spans: Sequence[tuple[int, int]]) -> tuple[Segment, ...]:
    """About `SNIPPET_WORDS` words of `text` around its first valid span (the start of the text
    when there is none), at most `SNIPPET_MAX_CHARS` characters, with "…" where text was cut."""
    words = [m.span() for m in _WORD_RE.finditer(text)]
    if not words:
        return ()
    valid = [(s, e) for s, e in spans if 0 <= s < e <= len(text)]
    first = min(valid)[0] if valid else 0
    at = max(bisect_right([w[0] for w in words], first) - 1, 0)
    start = max(at - SNIPPET_WORDS_BEFORE, 0)
    end = min(start + SNIPPET_WORDS, len(words))
    start = max(end - SNIPPET_WORDS, 0)
    lo, hi = words[start][0], words[end - 1][1]
    if hi - lo > SNIPPET_MAX_CHARS:  # very long "words" (URLs, formulas): cut by characters
        lo = max(lo, min(first, hi) - SNIPPET_MAX_CHARS // 4)
        hi = min(hi, lo + SNIPPET_MAX_CHARS)
    body = highlight(text, valid, lo, hi)
    head = (Segment("… "),) if lo > 0 else ()
    tail = (Segment(" …"),) if hi < len(text.rstrip()) else ()
    return head + body + tail


def _authors(authors: Sequence[str]) -> str:
    shown = [clip(a, NAME_MAX) for a in authors[:MAX_AUTHORS]]
    return ", ".join(shown) + (" et al." if len(authors) > MAX_AUTHORS else "")


def _hits(item_no: int, m: MatchedItem) -> list[tuple[str, int, int]]:
    """The explanation's hits as (field, start, end); ValueError saying which item is malformed."""
    where = f"match {item_no} (paper {m.paper.id}, rule {m.rule_id})"
    hits = m.explanation.get("hits", [])
    if not isinstance(hits, list):
        raise ValueError(f"{where}: explanation 'hits' must be a list")
    out = []
    for j, h in enumerate(hits):
        if not (
            isinstance(h, Mapping)
            and isinstance(h.get("field"), str)
            and isinstance(h.get("start"), int)
            and isinstance(h.get("end"), int)
        ):
            raise ValueError(f"{where}: hits[{j}] needs a str 'field' and int 'start'/'end'")
        out.append((h["field"], h["start"], h["end"]))
    return out


def _terms(item_no: int, m: MatchedItem) -> tuple[str, ...]:
    terms = m.explanation.get("terms", [])
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise ValueError(
            f"match {item_no} (paper {m.paper.id}, rule {m.rule_id}): 'terms' must be a str list"
        )
    return tuple(dict.fromkeys(clip(t, RULE_NAME_MAX) for t in terms))[:MAX_TERMS]


def _rank_key(m: MatchedItem) -> tuple[Any, ...]:
    p = m.paper
    published = p.published.timestamp() if p.published else float("-inf")
    return (
        clip(m.rule_name, RULE_NAME_MAX).casefold(),
        m.rule_id,
        p.upvotes is None,
        -(p.upvotes or 0),
        -published,
        p.id,
    )


def paper_item(paper: Paper) -> DigestItem:
    """A paper as shown without a matching rule (a recommendation): no highlights."""
    return _item(paper, [])


def _item(paper: Paper, matches: list[tuple[int, MatchedItem]]) -> DigestItem:
    spans: dict[str, list[tuple[int, int]]] = {"title": [], "abstract": []}
    rules: list[RuleRef] = []
    for no, m in matches:
        for fld, start, end in _hits(no, m):
            if fld in spans:
                spans[fld].append((start, end))
        if all(r.id != m.rule_id for r in rules):
            name = clip(m.rule_name, RULE_NAME_MAX)
            rules.append(RuleRef(m.rule_id, name, why_terms(name, _terms(no, m))))
    if len(paper.title) <= TITLE_MAX:
        title = highlight(paper.title, spans["title"])
    else:
        cut = len(clip(paper.title, TITLE_MAX)) - 1
        title = (*highlight(paper.title, spans["title"], 0, cut), Segment("…"))
    url, links = paper_links(paper)
    return DigestItem(
        paper_id=paper.id,
        title=title,
        url=url,
        authors=_authors(paper.authors),
        organization=clip(paper.organization, ORG_MAX) if paper.organization else None,
        upvotes=paper.upvotes,
        comments=paper.comments,
        date=paper.published.astimezone(UTC).date() if paper.published else None,
        rules=tuple(rules[:MAX_RULES_SHOWN]),
        more_rules=max(len(rules) - MAX_RULES_SHOWN, 0),
        snippet=snippet(paper.abstract, spans["abstract"]),
        links=links,
        sources=tuple(dict.fromkeys(paper.extra.get("sources") or ())),
    )


def _clock(at: datetime, now: datetime, tz: str) -> str:
    """``07:58 UTC`` today, ``Mon 27 Nov 07:58 UTC`` on another day (in the subscriber's zone)."""
    zi = zone(tz)
    local, local_now = at.astimezone(zi), now.astimezone(zi)
    fmt = "%H:%M %Z" if local.date() == local_now.date() else "%a %d %b %H:%M %Z"
    return local.strftime(fmt)


def _papers_here(n: int, earlier: bool = False) -> str:
    word = "paper" if n == 1 else "papers"
    return f"{n} {'earlier ' if earlier else ''}{word} in this email"


def freshness_line(
    s: SourceStatus, now: datetime, tz: str = "UTC", listed: int = 0
) -> FreshnessLine:
    """One line saying how fresh a source is and how many of this email's papers it listed
    (`listed`), by its display name: ``HF daily papers: checked 07:58 UTC, 4 papers in this
    email``, ``arXiv cs.LG: no announcement today (weekend)``, ``HF trending: failing since
    06:00 UTC; what you missed will follow``. It never counts the source's last scrape's "new"
    papers: that number says nothing about this email (papers of an earlier scrape, or updates
    whose rule turned, are listed under a scrape with 0 new)."""
    name = s.display_name or s.name
    here = f", {_papers_here(listed, earlier=True)}" if listed else ""
    if s.health != "ok":
        since = s.failing_since or s.last_success_at
        word = "failing" if s.health == "failing" else "having trouble"
        when = f" since {_clock(since, now, tz)}" if since else ""
        text = f"{name}: {word}{when}; what you missed will follow{here}"
    elif s.quiet_day:
        weekend = " (weekend)" if now.astimezone(UTC).weekday() >= 5 else ""
        text = f"{name}: no announcement today{weekend}{here}"
    elif s.last_success_at is None:
        text = f"{name}: not checked yet"
    else:
        text = f"{name}: checked {_clock(s.last_success_at, now, tz)}, {_papers_here(listed)}"
    return FreshnessLine(s.name, s.health, text)


def _freshness(
    sources: Sequence[SourceStatus], groups: Sequence[RuleGroup], now: datetime, tz: str
) -> tuple[FreshnessLine, ...]:
    """The footer's lines: each source that listed a paper this email shows, with that count,
    and each source in trouble (what it missed will follow)."""
    listed: dict[str, int] = {}
    seen: set[str] = set()
    for item in (i for g in groups for i in g.items):
        if item.paper_id not in seen:
            seen.add(item.paper_id)
            for name in item.sources:
                listed[name] = listed.get(name, 0) + 1
    return tuple(
        freshness_line(s, now, tz, listed.get(s.name, 0))
        for s in sources
        if listed.get(s.name) or s.health != "ok"
    )


def build_digest(
    subscriber: SubscriberInfo,
    items: Sequence[MatchedItem],
    sources: Sequence[SourceStatus],
    *,
    now: datetime,
    online_url: str,
    max_items: int = 50,
) -> Digest:
    """Group, rank and cap one subscriber's matches (see the module docstring). The kind is
    ``alert`` for instant subscribers, ``digest`` otherwise. Raises ValueError for a naive `now`,
    a `max_items` below 1 or a malformed explanation (naming the match); hits whose offsets fall
    outside the paper's current text are ignored (the text may have changed since matching)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    zone(subscriber.timezone)
    ranked = sorted(enumerate(items), key=lambda pair: _rank_key(pair[1]))
    by_paper: dict[str, list[tuple[int, MatchedItem]]] = {}
    for no, m in ranked:
        by_paper.setdefault(m.paper.id, []).append((no, m))
    groups: list[RuleGroup] = []
    shown = 0
    for matches in by_paper.values():  # dicts keep first-seen, i.e. rank, order
        if shown >= max_items:
            break
        first = matches[0][1]
        item = _item(first.paper, matches)
        if not groups or groups[-1].rule_id != first.rule_id:
            groups.append(RuleGroup(first.rule_id, clip(first.rule_name, RULE_NAME_MAX), ()))
        groups[-1] = replace(groups[-1], items=(*groups[-1].items, item))
        shown += 1
    return Digest(
        subscriber=subscriber,
        kind="alert" if subscriber.frequency == "instant" else "digest",
        now=now,
        groups=tuple(groups),
        total_papers=len(by_paper),
        more_count=len(by_paper) - shown,
        online_url=online_url,
        freshness=_freshness(sources, groups, now, subscriber.timezone),
        source_statuses=tuple(sources),
    )
