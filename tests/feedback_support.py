"""Helpers for the feedback tests: real arXiv papers from the shared fixtures, one digest round
through the real pipeline (events -> matching -> dispatch -> SMTP to the sink), and the
feedback links of a received email keyed by paper and action.

    papers = arxiv_fixture(RETRIEVAL_DAY1)
    msg = digest_round(factory, settings, sink, now)
    links = feedback_links_in(msg)          # {(paper_id, "more"): url, ...}
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from paperalerts.core.feedback import read_feedback_token
from paperalerts.core.papers import Paper
from paperalerts.core.sources import parse
from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.step_config import delivery_config
from paperalerts.pipeline import match_new_events
from paperalerts.pipeline.deliver import dispatch_due_digests, send_delivery
from paperalerts.pipeline.recommend import train_recommendations
from smtp_sink import SMTPSink
from web_support import SECRET

RETRIEVAL_DAY1 = "arxiv_api/arxiv_api_query_all-retrieval_submittedDate-desc_2026-08-12.xml"
RETRIEVAL_DAY2 = "arxiv_api/arxiv_api_query_all-retrieval_submittedDate-desc_2026-08-14.xml"
AI_RELEVANCE = "arxiv_api/arxiv_api_query_all-AI_relevance_2026-02-19.xml"
LG_OR_AI = "arxiv_api/arxiv_api_query_cat-cs.LG-OR-cat-cs.AI_2026-04-30.xml"
TRANSFORMER_LG = "arxiv_api/arxiv_api_query_all-transformer-AND-cat-cs.LG_2026-06-14.xml"
CS_CL = "arxiv_api/arxiv_api_query_cat-cs.CL_2026-05-11.xml"
_FEEDBACK_RE = re.compile(r"https?://[^\s<>\"]+/f/([A-Za-z0-9_\-.]+)/(more|less|mute|follow)")


def arxiv_fixture(rel: str) -> list[Paper]:
    """The papers of one recorded arXiv API response, parsed by the real parser."""
    return parse("arxiv", fixture_file(rel).read_bytes(), f"https://export.arxiv.org/{rel}")


def digest_round(
    factory: sessionmaker[Session], settings: Settings, sink: SMTPSink, now: datetime
) -> list[EmailMessage]:
    """One beat's worth: an event for every stored paper without one, matching, the bulk
    recommendation step, every
    subscriber's digest made due and sent through the real SMTP mailer. Returns what arrived."""
    before = len(sink.messages)
    with transaction(factory) as s:
        evented = set(s.scalars(select(m.PaperEvent.paper_id)))
        for pid in s.scalars(select(m.Paper.id)):
            if pid not in evented:
                s.add(m.PaperEvent(paper_id=pid, kind="new", at=now))
        s.execute(update(m.Subscriber).values(next_digest_at=now - timedelta(minutes=1)))
    match_new_events(factory, now=now)
    cfg = delivery_config(settings)
    train_recommendations(factory, cfg.recommend(), now=now)  # as the match task chains it
    mailer = SMTPMailer(sink.url, timeout=10)
    try:
        for did in dispatch_due_digests(factory, cfg, now=now):
            assert send_delivery(factory, did, mailer=mailer, cfg=cfg, now=now).status == "sent"
    finally:
        mailer.close()
    return [r.message for r in sink.messages[before:]]


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def feedback_links_in(text: str) -> dict[tuple[str, str], str]:
    """(paper id, action) -> URL for every feedback link in `text` (tokens read with the tests'
    secret to learn the paper they name)."""
    out: dict[tuple[str, str], str] = {}
    for match in _FEEDBACK_RE.finditer(text):
        claim = read_feedback_token(SECRET, match.group(1))
        out[(claim.paper_id, match.group(2))] = match.group(0)
    return out


def path_of(url: str) -> str:
    return urlsplit(url).path
