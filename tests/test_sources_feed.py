"""The generic RSS/Atom parser (kind ``feed``) on the third-party HF Daily Papers feeds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import fixture_file
from paperalerts.core.papers import Paper
from paperalerts.core.sources import feed
from paperalerts.errors import ParseError

HB = "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-{}.xml"
TAKARA = "hf_papers_rss_thirdparty/takara_tldr_papers_feed_2026-04-30.xml"


def _parse(rel: str) -> list[Paper]:
    return feed.parse(fixture_file(rel).read_bytes(), "https://example.org/feed.xml")


def test_labelled_description_gives_authors_upvotes_and_abstract() -> None:
    """huangboming: <b>Authors:</b>, <b>Upvotes:</b>, <b>Summary:</b> parts are read one by one;
    the arXiv link gives the canonical id."""
    papers = _parse(HB.format("04"))
    assert len(papers) == 27
    p = papers[0]
    assert p.id == "2607.15820"
    assert p.source == "feed"
    assert p.title == (
        "In the Driver's Seat: A Multi-Company Study on the Reality of Autonomous Driving System "
        "Testing"
    )
    assert p.authors == (
        "Qunying Song", "Yuan Gao", "Johannes Betz", "Dietmar Pfahl", "Mohammad Reza Mousavi",
        "Federica Sarro",
    )
    assert p.upvotes == 1
    assert p.abstract.startswith("Autonomous driving systems (ADS) are rapidly advancing")
    assert "Authors:" not in p.abstract and "Upvotes:" not in p.abstract
    assert p.published == datetime(2026, 7, 17, tzinfo=UTC)
    assert p.url == "https://arxiv.org/abs/2607.15820"
    assert p.pdf_url == "https://arxiv.org/pdf/2607.15820"


def test_weekend_pair_same_papers_changed_upvotes() -> None:
    """08-01 and 08-02 list the same 38 papers; Metis went from 240 to 254 upvotes."""
    day1 = {p.id: p for p in _parse(HB.format("01"))}
    day2 = {p.id: p for p in _parse(HB.format("02"))}
    assert len(day1) == 38 and day1.keys() == day2.keys()
    metis1, metis2 = day1["2607.26760"], day2["2607.26760"]
    assert metis1.title == "Metis: Memory Foundation Model"
    assert (metis1.upvotes, metis2.upvotes) == (240, 254)
    assert metis1.authors[0] == "Zeyu Zhang" and metis1.authors[-1] == "Tat-Seng Chua"
    assert len(metis1.authors) == 17
    assert metis1.published == datetime(2026, 7, 29, tzinfo=UTC)


def test_day_change_has_new_papers() -> None:
    """08-04 -> 08-05 is a normal day change: 27 then 40 entries, mostly new ids."""
    before = {p.id for p in _parse(HB.format("04"))}
    after = _parse(HB.format("05"))
    assert len(after) == 40
    assert after[0].id == "2607.23693"
    assert after[0].title == (
        "Compute Globally, Materialize Locally: The Memory Contract of Sparse Event-KV"
    )
    assert len({p.id for p in after} - before) > 20


def test_takara_feed_ids_from_takara_links() -> None:
    """Takara links tldr.takara.ai/p/<arXiv id>: canonical arXiv id, abstract from CDATA."""
    papers = _parse(TAKARA)
    assert len(papers) == 50
    p = papers[0]
    assert p.id == "2604.26238"
    assert p.title == "EnerGS: Energy-Based Gaussian Splatting with Partial Geometric Priors"
    assert p.url == "https://tldr.takara.ai/p/2604.26238"
    assert p.authors == () and p.upvotes is None
    assert p.published == datetime(2026, 4, 29, 2, 39, 18, tzinfo=UTC)
    assert p.abstract.startswith("3D Gaussian Splatting (3DGS) has been widely adopted")
    assert papers[1].id == "2604.26378"
    assert papers[1].title == (
        "CoQuant: Joint Weight-Activation Subspace Projection for Mixed-Precision LLMs"
    )


def test_non_paper_entries_get_feed_ids() -> None:
    """Entries without a paper URL get ``feed:<guid>``, else ``feed:<link>``; HTML is reduced."""
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>
<item><title>Post &lt;b&gt;one&lt;/b&gt;</title>
<guid isPermaLink="false">tag:blog.example,2026:1</guid>
<description>&lt;p&gt;Hello&lt;/p&gt;&lt;p&gt;world &amp;amp; more&lt;/p&gt;</description>
<author>ann@example.org (Ann Author)</author></item>
<item><title>Post two</title><link>https://blog.example/two</link></item>
</channel></rss>"""
    one, two = feed.parse(body, "https://blog.example/rss")
    assert one.id == "feed:tag:blog.example,2026:1"
    assert one.title == "Post one"
    assert one.abstract == "Hello world & more"
    assert one.pdf_url is None
    assert two.id == "feed:https://blog.example/two"
    assert two.url == "https://blog.example/two"


def test_atom_feed_entries() -> None:
    """Atom entries: id, authors, updated date; an HF papers link gives the arXiv id."""
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title><id>urn:x</id>
<updated>2026-01-02T03:04:05+01:00</updated>
<entry><id>urn:uuid:1</id><title type="html">A &lt;i&gt;paper&lt;/i&gt;</title>
<link href="https://huggingface.co/papers/2401.04088"/><updated>2026-01-02T03:04:05+01:00</updated>
<author><name>Ann One</name></author><author><name>Bob Two</name></author>
<summary>Plain   text
summary</summary></entry></feed>"""
    [p] = feed.parse(body, "https://x.example/atom")
    assert p.id == "2401.04088"
    assert p.title == "A paper"
    assert p.authors == ("Ann One", "Bob Two")
    assert p.abstract == "Plain text summary"
    assert p.published is not None and p.published.isoformat() == "2026-01-02T03:04:05+01:00"
    assert p.extra["entry_id"] == "urn:uuid:1"


def test_empty_feed_is_an_empty_list() -> None:
    """A well-formed feed without entries parses to []."""
    assert feed.parse(b'<rss version="2.0"><channel><title>t</title></channel></rss>', "u") == []


@pytest.mark.parametrize(
    "rel",
    [
        "hf_papers_html/hf_papers_daily_2026-09-28.html",
        "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json",
    ],
)
def test_non_feeds_raise(rel: str) -> None:
    """An HTML page or a JSON body is not a feed: ParseError naming the kind and URL."""
    with pytest.raises(ParseError, match=r"not an RSS or Atom feed.*\(feed https://x\.example/\)"):
        feed.parse(fixture_file(rel).read_bytes(), "https://x.example/")


def test_entry_without_guid_or_link_raises() -> None:
    """An entry that cannot be identified is an error naming the entry."""
    body = (b'<rss version="2.0"><channel><title>t</title>'
            b"<item><title>Lost</title></item></channel></rss>")
    with pytest.raises(ParseError, match=r"entry 0 \('Lost'\): neither guid/id nor link"):
        feed.parse(body, "u")


def test_labelled_parts_helper() -> None:
    """labelled_parts splits <b>Label:</b> value runs, lower-casing labels."""
    html = "<p><b>Authors:</b> A, B</p><p><b>Upvotes:</b> 7 <b>Note:</b> x <i>y</i></p>"
    assert feed.labelled_parts(html) == {"authors": "A, B", "upvotes": "7", "note": "x y"}
    assert feed.labelled_parts("no markup") == {}


def test_damaged_upvote_count_is_unknown_not_a_crash() -> None:
    """A non-ASCII digit ("²", which str.isdigit accepts) or a huge number gives upvotes None."""
    for count in ("²0", "9" * 5000):
        body = (
            '<rss version="2.0"><channel><title>t</title><item><title>T</title>'
            "<link>https://arxiv.org/abs/2401.00001</link><description>&lt;p&gt;&lt;b&gt;Upvotes:"
            f"&lt;/b&gt; {count}&lt;/p&gt;</description></item></channel></rss>"
        ).encode()
        [p] = feed.parse(body, "u")
        assert p.id == "2401.00001" and p.upvotes is None
