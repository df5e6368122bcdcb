"""Hostile inputs for the fuzz tests and `benchmarks/fuzz_hostile.py`: mutated fixture files for
every parser and random CSS selector sets, drawn from a `random.Random` so a run is repeatable
by its seed. Fixture files are read from the shared fixtures folder, never copied.

The outcome contract checked by both: a parse returns papers or raises ParseError (a selector
set raises SelectorError at save, or runs); anything else is an uncaught exception.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paperalerts.core.sources import html_list, parse
from paperalerts.errors import ParseError

# kind -> fixture folders (relative to the fixtures folder) and the url they are parsed as.
KIND_FIXTURES: dict[str, tuple[str, ...]] = {
    "feed": ("hf_papers_rss_thirdparty",),
    "arxiv": ("arxiv_api", "arxiv_rss"),
    "hf-api": ("hf_api_daily_papers",),
    "hf-papers": ("hf_papers_html",),
    "html": ("hf_papers_html",),
}
URL = "https://huggingface.co/papers"
# The html kind parses the Daily Papers page through these (its cards).
CARDS = {"selectors": {"item": "article", "title": "h3 a", "link": "h3 a"}}

# What fuzzing found and what hostile pages carry: long runs (quadratic regexes), character
# references of them, deep nesting, NULs and broken UTF-8, huge numbers, script links, DTDs.
_SNIPPETS: tuple[Callable[[random.Random], bytes], ...] = (
    lambda r: b"A" * r.choice((500, 2_000, 5_000, 20_000, 80_000)),
    lambda r: b"a." * r.choice((1_000, 10_000, 40_000)),
    lambda r: b"&#65;" * r.choice((1_000, 20_000)),
    lambda r: (b"x" * 1_999 + b" ") * r.choice((10, 200, 2_000)),
    lambda r: b"<div>" * r.choice((100, 2_000, 20_000)),
    lambda r: b"<b>Authors:</b>" * r.choice((10, 5_000)),
    lambda r: b"\x00\xff\xfe\xc3\x28" * r.choice((1, 100)),
    lambda r: b"9" * r.choice((30, 5_000)),
    lambda r: b"javascript:alert(1)",
    lambda r: b"<![CDATA[" + b"<a href='x'>" * r.choice((10, 5_000)) + b"]]>",
    lambda r: b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    lambda r: b"&lt;p " * r.choice((100, 5_000)),
    lambda r: b'"' + b"[" * r.choice((100, 5_000)),
    lambda r: b"2024-" + b"1" * r.choice((100, 5_000)),
)
# Places where a long value does most harm: inside author names, titles, ids, JSON strings.
_ANCHORS = (b"<author>", b"<name>", b"<dc:creator>", b"<title>", b"<link>", b"<id>", b"<guid",
            b'"name":"', b'"title":"', b'"id":"', b'"summary":"', b"<h3", b'href="', b"data-props")
MAX_BYTES = 3 * 1024 * 1024


def fixture_files(root: Path, kind: str) -> list[Path]:
    """The fixture files a kind is fuzzed with (sorted, so a seed picks the same file)."""
    return sorted(p for d in KIND_FIXTURES[kind] for p in (root / d).glob("*") if p.is_file())


def mutate(body: bytes, r: random.Random) -> bytes:
    """One to four random mutations of `body`: byte flips, cuts, repeated slices, hostile
    snippets (at random or right after a tag or key that names a field), truncation."""
    out = bytearray(body)
    for _ in range(r.randint(1, 4)):
        op = r.randrange(6)
        n = len(out)
        if op == 0 and n:  # flip bytes
            for _ in range(r.randint(1, 20)):
                out[r.randrange(n)] = r.randrange(256)
        elif op == 1 and n:  # cut a slice
            a = r.randrange(n)
            del out[a:a + r.randint(1, 2_000)]
        elif op == 2 and n:  # repeat a slice
            a = r.randrange(n)
            piece = bytes(out[a:a + r.randint(1, 300)])
            out[a:a] = piece * r.randint(2, 200)
        elif op == 3:  # a hostile snippet at a random place
            at = r.randint(0, n)
            out[at:at] = r.choice(_SNIPPETS)(r)
        elif op == 4:  # a hostile snippet inside a field
            anchor = r.choice(_ANCHORS)
            found = bytes(out).find(anchor)
            if found != -1:
                at = found + len(anchor)
                out[at:at] = r.choice(_SNIPPETS)(r)
        elif n:  # truncate
            del out[r.randrange(n):]
    return bytes(out[:MAX_BYTES])


_TAGS = ("div", "a", "article", "h3", "span", "li", "p", "*", "section", "img", "html")
_PSEUDO = (":first-child", ":nth-child(2n+1)", ":not(a)", ":has(> a)", ":scope", ":is(h3, a)",
           ":-soup-contains('x')", ":root", ":empty", ":nth-of-type(3)", ":hover", ":link",
           "::before", "::after", "::first-line", ":nth-child(", ":not(", ":has()", ":unknown")
_GARBAGE = ("[", "(", ")", "@", ",", '"', "'", "\\", "#", ".", "{", "}", "|", "$", "%", "\x00")


def selector(r: random.Random) -> str:
    """A random selector: mostly CSS-shaped (tags, classes, attributes, pseudo-classes and
    -elements, combinators, a trailing @attr), sometimes with garbage mixed in."""
    parts = []
    for i in range(r.randint(1, 4)):
        if i:
            parts.append(r.choice((" ", " > ", " + ", " ~ ", ", ")))
        part = r.choice(_TAGS)
        for _ in range(r.randint(0, 2)):
            part += r.choice((f".c{r.randrange(9)}", f"#i{r.randrange(9)}", "[href]",
                              '[data-x="y"]', "[class~=a]", r.choice(_PSEUDO)))
        parts.append(part)
    css = "".join(parts)
    if r.random() < 0.2:
        at = r.randint(0, len(css))
        css = css[:at] + r.choice(_GARBAGE) + css[at:]
    if r.random() < 0.3:
        css += r.choice(("@href", "@data-id", "@", "@class", "@-x"))
    return css


def selector_set(r: random.Random) -> dict[str, str]:
    """A random selectors mapping, sometimes with fields missing, empty or unknown."""
    fields = [f for f in html_list.FIELDS if f in html_list.REQUIRED or r.random() < 0.4]
    out = {f: selector(r) for f in fields}
    if r.random() < 0.05:
        out.pop(r.choice(list(out)))
    if r.random() < 0.05:
        out["upvotes"] = "b"
    return out


@dataclass(frozen=True)
class Outcome:
    """One fuzzed call: ``ok`` (papers, or a selector set that runs), ``refused`` (ParseError
    or SelectorError, the expected answer to garbage) or ``crash`` (anything else: a bug), and
    how long it took: `seconds` of this thread's CPU (what the input costs, whatever else the
    machine runs), `wall` seconds as measured."""

    status: str
    seconds: float
    detail: str = ""
    wall: float = 0.0


def parse_outcome(kind: str, body: bytes) -> Outcome:
    """Parse `body` as `kind` (the html kind with the Daily Papers card selectors)."""
    start, wall = time.thread_time(), time.perf_counter()
    try:
        parse(kind, body, URL, CARDS if kind == "html" else None)
        status, detail = "ok", ""
    except ParseError as e:
        status, detail = "refused", str(e)[:200]
    except Exception as e:
        status, detail = "crash", f"{type(e).__name__}: {str(e)[:200]}"
    return Outcome(status, time.thread_time() - start, detail, time.perf_counter() - wall)


def selectors_outcome(selectors: dict[str, str], page: bytes) -> Outcome:
    """Check a selector set as a save would, and run an accepted one on `page` as a scrape
    would: refused at save, or it runs (papers or a ParseError about the page)."""
    start, wall = time.thread_time(), time.perf_counter()
    try:
        checked = html_list.selectors_from_options(selectors)
    except html_list.SelectorError as e:
        return Outcome("refused", time.thread_time() - start, str(e)[:200])
    except Exception as e:
        return Outcome("crash", time.thread_time() - start, f"save: {type(e).__name__}: {e}")
    try:
        parse("html", page, URL, checked.to_options())
        status, detail = "ok", ""
    except ParseError as e:
        status, detail = "ok", f"page refused: {str(e)[:150]}"  # ran; the page did not fit
    except Exception as e:
        status, detail = "crash", f"run {selectors}: {type(e).__name__}: {str(e)[:200]}"
    return Outcome(status, time.thread_time() - start, detail, time.perf_counter() - wall)
