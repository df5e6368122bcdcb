"""The demo's sample pages, made from `catalog`: per day, a Hugging Face ``/api/daily_papers``-
shaped JSON array and an RSS 2.0 feed in the labelled style of the feeds that republish it.

The files ship in the package (``paperalerts/faces/demo/pages/``) so the demo works offline
from a wheel; ``python -m paperalerts.faces.demo.pages`` writes them again after the catalog
changes (a test checks that the shipped files are what this module makes).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any, Final

from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]
from markupsafe import escape

from paperalerts.faces.demo.catalog import (
    API_DAYS,
    BY_ID,
    DAY_DATES,
    FEED_DAYS,
    UPVOTES_DAY2,
    DemoPaper,
)

API_FILE: Final = "daily_papers_day{}.json"
FEED_FILE: Final = "feed_day{}.xml"


def _stamp(day: str, hour: int) -> str:
    return f"{day}T{hour:02d}:00:00.000Z"


def _upvotes(paper: DemoPaper, day: int) -> int:
    return UPVOTES_DAY2.get(paper.id, paper.upvotes) if day == 2 else paper.upvotes


def api_item(paper: DemoPaper, day: int) -> dict[str, Any]:
    """One daily-papers item in the API's current shape."""
    listed = DAY_DATES[day - 1]
    inner: dict[str, Any] = {
        "id": paper.id,
        "authors": [{"name": a, "hidden": False} for a in paper.authors],
        "publishedAt": _stamp(paper.published, 9),
        "submittedOnDailyAt": _stamp(listed, 6),
        "title": paper.title,
        "summary": paper.abstract,
        "upvotes": _upvotes(paper, day),
    }
    if paper.code_url:
        inner["githubRepo"] = paper.code_url
    if paper.organization:
        inner["organization"] = {
            "name": paper.organization.lower().replace(" ", "-"),
            "fullname": paper.organization,
        }
    return {
        "paper": inner,
        "publishedAt": _stamp(listed, 6),
        "title": paper.title,
        "summary": paper.abstract,
        "numComments": paper.comments,
    }


def api_page(day: int) -> bytes:
    """Day `day` (1 or 2) of the API, compact JSON like the real responses."""
    items = [api_item(BY_ID[pid], day) for pid in API_DAYS[day - 1]]
    return json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()


def feed_page(day: int) -> bytes:
    """Day `day` (1 or 2) of the feed: RSS 2.0, one item per paper, linking to its arXiv page,
    with ``<b>Authors:</b>``, ``<b>Upvotes:</b>`` and ``<b>Summary:</b>`` parts."""
    built = datetime.combine(datetime.fromisoformat(DAY_DATES[day - 1]).date(), time(7), UTC)
    fg = FeedGenerator()
    fg.title("Demo daily papers feed")
    fg.link(href="https://paperalerts.example/demo-feed", rel="alternate")
    fg.description("Invented papers for the paperalerts demo.")
    fg.language("en")
    fg.lastBuildDate(built)
    # feedgen prepends entries; add them in reverse so the file lists them in page order
    for pid in reversed(FEED_DAYS[day - 1]):
        paper = BY_ID[pid]
        fe = fg.add_entry()
        fe.title(paper.title)
        fe.link(href=f"https://arxiv.org/abs/{paper.id}")
        fe.guid(f"https://arxiv.org/abs/{paper.id}", permalink=True)
        fe.pubDate(datetime.combine(datetime.fromisoformat(paper.published).date(), time(9), UTC))
        fe.description(
            f"<p><b>Authors:</b> {escape(', '.join(paper.authors))}</p>"
            f"<p><b>Upvotes:</b> {_upvotes(paper, day)}</p>"
            f"<p><b>Summary:</b> {escape(paper.abstract)}</p>"
        )
    out: bytes = fg.rss_str(pretty=True)
    return out


def build() -> dict[str, bytes]:
    """Every page by file name."""
    pages = {}
    for day in (1, 2):
        pages[API_FILE.format(day)] = api_page(day)
        pages[FEED_FILE.format(day)] = feed_page(day)
    return pages


def shipped(name: str) -> bytes:
    """A page as shipped in the package."""
    return resources.files("paperalerts.faces.demo").joinpath("pages", name).read_bytes()


def main(argv: list[str]) -> int:
    """Write the pages into the package folder (or the folder given)."""
    target = Path(argv[0]) if argv else Path(__file__).resolve().parent / "pages"
    target.mkdir(parents=True, exist_ok=True)
    for name, body in build().items():
        (target / name).write_bytes(body)
        print(f"wrote {target / name} ({len(body)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
