"""The links shown with a paper in emails: only those that exist, only http(s). Pure.

Which links a paper has depends on where it was seen: an arXiv id gives the arXiv abstract and
PDF; a Hugging Face page exists only for papers submitted there, so it is linked only when a
Hugging Face source listed the paper (or its URL is that page), never guessed from the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from paperalerts.core.papers import Paper, normalize_arxiv_id

URL_MAX: Final = 600


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


def http_url(url: str | None) -> str | None:
    """`url` if it is an http(s) URL of sane length without whitespace, else None (never a
    ``javascript:`` or ``data:`` link into an email)."""
    if not url or len(url) > URL_MAX or not re.match(r"(?i)^https?://[^\s<>\"]+$", url):
        return None
    return url


HF_PAGE: Final = "https://huggingface.co/papers/"


def on_hugging_face(p: Paper) -> bool:
    """True when the paper has a Hugging Face page: its URL is one, or a Hugging Face source
    (kind ``hf-*``, listed in ``extra["source_kinds"]``) listed it. HF has a page only for the
    papers someone submitted there, so an arXiv id alone proves nothing."""
    kinds = p.extra.get("source_kinds") or ()
    return p.url.startswith(HF_PAGE) or p.source.startswith("hf-") or any(
        str(k).startswith("hf-") for k in kinds
    )


def paper_links(p: Paper) -> tuple[str, tuple[Link, ...]]:
    """The title's link and the row of links, only those that exist: the HF page (when HF
    listed the paper), arXiv (for arXiv ids), PDF, code."""
    arxiv = normalize_arxiv_id(p.id)
    links: list[Link] = []
    if arxiv:
        if on_hugging_face(p):
            links.append(Link("Hugging Face", f"{HF_PAGE}{arxiv}"))
        links.append(Link("arXiv", f"https://arxiv.org/abs/{arxiv}"))
    pdf = http_url(p.pdf_url) or (f"https://arxiv.org/pdf/{arxiv}" if arxiv else None)
    if pdf:
        links.append(Link("PDF", pdf))
    if code := http_url(p.code_url):
        links.append(Link("Code", code))
    main = http_url(p.url) or (links[0].url if links else "")
    if main and all(link.url != main for link in links):
        links.insert(0, Link("Source", main))
    return main, tuple(links)
