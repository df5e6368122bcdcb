"""The sources `paperalerts init` adds unless told not to (README "Sources" documents them)."""

from __future__ import annotations

from typing import NamedTuple


class DefaultSource(NamedTuple):
    name: str
    kind: str
    url: str
    every_seconds: int
    description: str


DEFAULT_SOURCES: tuple[DefaultSource, ...] = (
    DefaultSource(
        "hf-daily",
        "hf-api",
        "https://huggingface.co/api/daily_papers",
        3600,
        "Hugging Face Daily Papers (JSON API)",
    ),
    DefaultSource(
        "hf-trending",
        "hf-papers",
        "https://huggingface.co/papers/trending",
        3600,
        "Hugging Face trending papers page",
    ),
    DefaultSource(
        "arxiv-cs.LG",
        "arxiv",
        "https://rss.arxiv.org/rss/cs.LG",
        7200,
        "arXiv cs.LG new submissions (RSS)",
    ),
    DefaultSource(
        "arxiv-cs.CL",
        "arxiv",
        "https://rss.arxiv.org/rss/cs.CL",
        7200,
        "arXiv cs.CL new submissions (RSS)",
    ),
    DefaultSource(
        "arxiv-cs.AI",
        "arxiv",
        "https://rss.arxiv.org/rss/cs.AI",
        7200,
        "arXiv cs.AI new submissions (RSS)",
    ),
    DefaultSource(
        "arxiv-cs.CV",
        "arxiv",
        "https://rss.arxiv.org/rss/cs.CV",
        7200,
        "arXiv cs.CV new submissions (RSS)",
    ),
)
