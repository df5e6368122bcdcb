"""What subscribers call a source: its display name, never the operator's internal name. Pure.

An operator names sources for the CLI and rules (`hf-daily`, `hfrss-fix`); subscribers read the
digest's freshness line, where such names mean nothing. A source shows its `display_name` when
one was set (`paperalerts sources add --display-name`), else a name derived from its kind and URL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_ARXIV_RSS = re.compile(r"/rss/([A-Za-z\-]+(?:\.[A-Za-z\-]+)?(?:\+[A-Za-z\-.]+)*)/?$")


def display_name(kind: str, url: str, display: str | None = None) -> str:
    """`display` when set, else by kind: "Hugging Face Daily Papers", "Hugging Face trending
    papers", "arXiv cs.LG" (from an arXiv RSS URL), else the URL's host ("papers.takara.ai")."""
    if display and display.strip():
        return display.strip()
    parts = urlsplit(url)
    if kind == "hf-api":
        return "Hugging Face Daily Papers"
    if kind == "hf-papers":
        return "Hugging Face trending papers" if "trending" in parts.path else (
            "Hugging Face papers"
        )
    if kind == "arxiv":
        found = _ARXIV_RSS.search(parts.path)
        return f"arXiv {found.group(1).replace('+', ', ')}" if found else "arXiv"
    host = (parts.hostname or "").removeprefix("www.")
    return host or "a feed"
