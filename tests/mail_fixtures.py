"""Test helpers for the email side: real papers from the HF daily-papers fixtures, and match
explanations whose hit offsets are found in the papers' real text (as the rule engine reports them).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from paperalerts.core.digest import MatchedItem
from paperalerts.core.papers import Paper
from paperalerts.pipeline.compose import DeliveryConfig

HF_DAY_2024_03_12 = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"
HF_DAY_2024_03_15 = "hf_api_daily_papers/hf_api_daily_papers_2024-03-15.json"
HF_DAY_2026_05_08 = "hf_api_daily_papers/hf_api_daily_papers_2026-05-08.json"


def _norm(text: str) -> str:
    return " ".join(text.split())


def hf_papers(path: Path) -> list[Paper]:
    """Papers from a Hugging Face /api/daily_papers JSON file, whitespace-normalised the way the
    source parsers hand them over (read with json directly: no dependency on the parser)."""
    out = []
    for entry in json.loads(path.read_bytes()):
        p = entry["paper"]
        org = p.get("organization") or entry.get("organization") or {}
        out.append(
            Paper(
                id=p["id"],
                title=_norm(entry.get("title") or p["title"]),
                source="hf-api",
                abstract=_norm(p.get("summary", "")),
                authors=tuple(_norm(a["name"]) for a in p.get("authors", [])),
                url=f"https://huggingface.co/papers/{p['id']}",
                pdf_url=f"https://arxiv.org/pdf/{p['id']}",
                code_url=p.get("githubRepo"),
                organization=org.get("fullname") or org.get("name"),
                published=datetime.fromisoformat(p["publishedAt"].replace("Z", "+00:00")),
                upvotes=p.get("upvotes"),
                comments=entry.get("numComments"),
                extra={"sources": ["hf-daily"]},
            )
        )
    return out


def explain(paper: Paper, terms: list[str]) -> dict[str, Any]:
    """An explanation with every case-insensitive occurrence of each term (as a word prefix) in
    the title and abstract, offsets into the paper's text."""
    hits = []
    for term in terms:
        pattern = re.compile(rf"\b{re.escape(term)}\w*", re.IGNORECASE)
        for field in ("title", "abstract"):
            for m in pattern.finditer(getattr(paper, field)):
                hits.append({"field": field, "term": term, "start": m.start(), "end": m.end()})
    return {"terms": terms, "hits": hits}


def match(
    paper: Paper, rule_id: int, rule_name: str, terms: list[str], at: datetime
) -> MatchedItem:
    """A MatchedItem for `paper` under the named rule, explained by `terms`."""
    return MatchedItem(paper, rule_id, rule_name, explain(paper, terms), at)


NOW = datetime.fromisoformat("2024-03-12T08:00:00+00:00")
# What the pipeline tests that send a digest to the SMTP sink configure.
DELIVERY_CFG = DeliveryConfig(
    base_url="https://alerts.example.org",
    secret="s" * 32,
    mail_from="paperalerts <alerts@example.org>",
    mail_domain="example.org",
)
FOOTER_REASON = (
    "You subscribed to research-paper alerts at alerts.example.org with ada@example.org."
)


def sample_digest(
    fixture: Path, *, now: datetime = NOW, max_items: int = 50, frequency: str = "daily"
) -> Any:
    """A fixed digest over one HF daily-papers file: rule 1 "Language models" (language, model)
    and rule 2 "Diffusion" (diffusion) over the papers mentioning them, plus three sources in the
    three freshness states (checked/failing relative to `now`). Europe/Berlin subscriber."""
    from datetime import timedelta

    from paperalerts.core.digest import SourceStatus, SubscriberInfo, build_digest

    papers = hf_papers(fixture)
    items = [
        match(p, 1, "Language models", ["language", "model"], now)
        for p in papers
        if "language" in f"{p.title} {p.abstract}".lower()
    ] + [
        match(p, 2, "Diffusion", ["diffusion"], now)
        for p in papers
        if "diffusion" in f"{p.title} {p.abstract}".lower()
    ]
    sources = [
        SourceStatus(
            "hf-daily", "hf-api", "ok", now - timedelta(minutes=2), None, 0,
            display_name="HF daily papers",
        ),
        SourceStatus(
            "arXiv cs.LG", "arxiv", "ok", now - timedelta(hours=2), None, 0, quiet_day=True
        ),
        SourceStatus(
            "HF trending",
            "hf-papers",
            "failing",
            now - timedelta(hours=26),
            now - timedelta(hours=2),
            0,
        ),
    ]
    subscriber = SubscriberInfo("ada@example.org", "Ada Lovelace", frequency, "Europe/Berlin")  # type: ignore[arg-type]
    return build_digest(
        subscriber,
        items,
        sources,
        now=now,
        max_items=max_items,
        online_url="https://alerts.example.org/v/VIEWTOKEN",
    )


def sample_footer() -> Any:
    from paperalerts.core.render import Footer

    return Footer(
        FOOTER_REASON,
        "Paper Alerts, 1 Example Street, 10115 Berlin",
        "https://alerts.example.org/m/MANAGETOKEN",
        "https://alerts.example.org/u/UNSUBTOKEN",
    )
