"""Hugging Face ``/api/daily_papers`` JSON (both the 2024 and the 2026 item shapes)."""

from __future__ import annotations

import json

from paperalerts.core.papers import Paper
from paperalerts.core.sources._hf import paper_from_item
from paperalerts.errors import ParseError

KIND = "hf-api"


def parse(body: bytes, url: str) -> list[Paper]:
    """Parse a ``/api/daily_papers`` response: a JSON array of daily-papers items.

    Returns one Paper per item (an empty array is a well-formed empty day). Raises ParseError
    when the body is not JSON, not an array, or an item has no paper id or title."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as e:
        raise ParseError(f"body is not UTF-8 JSON: {e.reason} at byte {e.start}", url=url,
                         kind=KIND) from None
    except json.JSONDecodeError as e:
        raise ParseError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", url=url,
                         kind=KIND) from None
    except (ValueError, RecursionError) as e:
        raise ParseError(f"invalid JSON: {e}", url=url, kind=KIND) from None
    if isinstance(data, dict) and "error" in data:
        raise ParseError(f"API answered an error: {str(data['error'])[:200]}", url=url, kind=KIND)
    if not isinstance(data, list):
        raise ParseError(f"expected a JSON array of papers, got {type(data).__name__}", url=url,
                         kind=KIND)
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ParseError(f"item {i}: expected an object, got {type(item).__name__}", url=url,
                             kind=KIND)
    return [paper_from_item(item, source=KIND, index=i, url=url) for i, item in enumerate(data)]
