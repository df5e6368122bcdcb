"""The Paper value type and canonical ids.

A paper's canonical id is its arXiv id without the version (``2403.06634``, ``hep-th/9901001``)
whenever one can be found; otherwise ``<source kind>:<entry id>``. One paper seen through two
sources therefore has one id.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

# New-style ids (0704.0001 onward: YYMM.NNNN, YYMM.NNNNN from 1501) and old-style (archive/YYMMNNN).
_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
ARXIV_ID_RE = re.compile(rf"^(?P<id>{_NEW_ID}|{_OLD_ID})(?:v\d+)?$")
_ARXIV_IN_URL_RE = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|huggingface\.co/papers/|tldr\.takara\.ai/p/|"
    rf"papers\.takara\.ai/p/|arxiv:)(?P<id>{_NEW_ID}|{_OLD_ID})(?:v\d+)?",
    re.IGNORECASE,
)


def normalize_arxiv_id(raw: str) -> str | None:
    """Return the arXiv id without version, or None when `raw` is not an arXiv id."""
    m = ARXIV_ID_RE.match(raw.strip())
    return m.group("id") if m else None


def arxiv_id_from_url(url: str) -> str | None:
    """Find an arXiv id in an arXiv, Hugging Face papers or Takara URL (or an ``arXiv:`` string)."""
    m = _ARXIV_IN_URL_RE.search(url)
    return m.group("id") if m else None


def canonical_id(source_kind: str, entry_id: str, *urls: str) -> str:
    """An arXiv id found in `entry_id` or any of `urls`, else ``kind:entry_id``."""
    found = normalize_arxiv_id(entry_id) or arxiv_id_from_url(entry_id)
    if found:
        return found
    for url in urls:
        if url and (found := arxiv_id_from_url(url)):
            return found
    return f"{source_kind}:{entry_id}"


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper as a source reported it. Immutable; text fields are already whitespace-normalised
    plain text (no HTML). `published` is timezone-aware or None. `extra` holds what only some
    sources carry (e.g. ``announce_type`` for arXiv RSS, ``listing_date`` for HF)."""

    id: str
    title: str
    source: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    url: str = ""
    pdf_url: str | None = None
    code_url: str | None = None
    organization: str | None = None
    published: datetime | None = None
    upvotes: int | None = None
    comments: int | None = None
    keywords: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The `paperalerts parse` output shape (public): JSON-ready, ISO 8601 dates, lists."""
        d = asdict(self)
        extra = d.pop("extra")
        d["authors"] = list(self.authors)
        d["keywords"] = list(self.keywords)
        d["published"] = self.published.isoformat() if self.published else None
        for k, v in extra.items():
            d.setdefault(k, v)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Paper:
        """Inverse of `to_json`; unknown keys go to `extra`. ValueError, saying what is wrong, on
        anything that is not a JSON object with an ``id``."""
        if not isinstance(d, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            got = kind.get(type(d), "a number")
            raise ValueError(f"expected a JSON object with at least an id, got {got}")
        if d.get("id") in (None, ""):
            raise ValueError("the object has no id")
        known = set(VALUE_FIELDS)
        published = d.get("published")
        return cls(
            id=str(d["id"]),
            title=str(d.get("title") or ""),
            source=str(d.get("source") or ""),
            abstract=str(d.get("abstract") or ""),
            authors=tuple(str(a) for a in d.get("authors") or ()),
            url=str(d.get("url") or ""),
            pdf_url=d.get("pdf_url"),
            code_url=d.get("code_url"),
            organization=d.get("organization"),
            published=datetime.fromisoformat(published) if published else None,
            upvotes=None if d.get("upvotes") is None else int(d["upvotes"]),
            comments=None if d.get("comments") is None else int(d["comments"]),
            keywords=tuple(str(k) for k in d.get("keywords") or ()),
            extra={k: v for k, v in d.items() if k not in known},
        )


# Every field of a Paper but `extra`, in declaration order.
VALUE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Paper) if f.name != "extra")
