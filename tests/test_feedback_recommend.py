"""Recommendations in digests (issue 13), end to end over the real pipeline, app and SMTP sink
with real arXiv papers: off until enough "more like this", then a labelled "You might also like"
section with reasons and feedback links, stored once per delivery (the online view shows the
same), never a paper twice; the admin's precision comes from feedback given on them later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from feedback_support import (
    LG_OR_AI,
    RETRIEVAL_DAY1,
    RETRIEVAL_DAY2,
    TRANSFORMER_LG,
    arxiv_fixture,
    digest_round,
    feedback_links_in,
    html_of,
    path_of,
    text_of,
)
from paperalerts.edges.db import models as m
from smtp_sink import SMTPSink
from web_support import WebEnv, add_subscriber, make_admin, seed_papers

RULE = "title:retrieval"
T0 = datetime(2026, 8, 12, 20, 0, tzinfo=UTC)


def _like(env: WebEnv, url: str) -> None:
    path = path_of(url)
    assert env.post_form(path, path, {}).status_code == 200


def _first_digest(env: WebEnv, sink: SMTPSink) -> tuple[dict[tuple[str, str], str], list[str]]:
    papers = arxiv_fixture(RETRIEVAL_DAY1)
    seed_papers(env.factory, papers, T0 - timedelta(hours=1))
    add_subscriber(env.factory, "reader@example.org", rules=(RULE,), now=T0)
    (msg,) = digest_round(env.factory, env.settings, sink, T0)
    assert "You might also like" not in text_of(msg)
    return feedback_links_in(text_of(msg)), [p.id for p in papers if "retrieval" in
                                             p.title.lower()]


def _section(text: str) -> str:
    return text.split("## You might also like", 1)[1].split("\n\n\n", 1)[0]


def test_after_a_like_the_next_digest_recommends_unmatched_papers_with_reasons(
    factory: sessionmaker[Session], sink: SMTPSink
) -> None:
    """One "more like this" (threshold 1) -> the next digest has "You might also like": at most
    `recommend_max_items` papers no rule matched, each with its reason terms and its own
    feedback links; the rows are stored with the delivery, the online view shows the same, and
    "more like this" on one counts towards the admin's precision."""
    env = WebEnv.start(factory, sink.url, recommend_min_positives=1, recommend_max_items=3)
    links, matched = _first_digest(env, sink)
    _like(env, links[(matched[0], "more")])
    day2 = arxiv_fixture(RETRIEVAL_DAY2) + arxiv_fixture(LG_OR_AI)
    seed_papers(env.factory, day2, T0 + timedelta(hours=2))
    (msg,) = digest_round(env.factory, env.settings, sink, T0 + timedelta(days=1))
    text = text_of(msg)
    assert "## You might also like" in text and "You might also like" in html_of(msg)
    with env.factory() as s:
        recs = list(s.scalars(select(m.Recommendation).order_by(m.Recommendation.score.desc())))
        matched_now = set(s.scalars(select(m.Match.paper_id)))
        view_key = s.scalars(select(m.Delivery.view_key).order_by(m.Delivery.id.desc())).first()
    assert 1 <= len(recs) <= 3
    assert not {r.paper_id for r in recs} & matched_now
    assert {r.delivery_id for r in recs} == {2}
    titles = {p.id: p.title for p in day2}
    section = _section(text)
    for r in recs:
        assert titles[r.paper_id][:40] in section
        assert f"Suggested because of: {', '.join(r.terms)}" in section
    rec_links = feedback_links_in(section)
    assert {pid for pid, _ in rec_links} == {r.paper_id for r in recs}
    online = env.client.get(f"/d/{view_key}").text
    assert "You might also like" in online and titles[recs[0].paper_id][:30] in online

    _like(env, rec_links[(recs[0].paper_id, "more")])
    make_admin(env.factory)
    env.login()
    admin = env.client.get("/admin/feedback").text
    assert f"{len(recs)} recommended papers shown; 1 got feedback afterwards, 1 of them" in admin
    assert "precision <b>100%</b>" in admin

    seed_papers(env.factory, arxiv_fixture(TRANSFORMER_LG), T0 + timedelta(days=1, hours=2))
    digest_round(env.factory, env.settings, sink, T0 + timedelta(days=2))
    with env.factory() as s:
        ids = list(s.scalars(select(m.Recommendation.paper_id)))
    assert len(ids) == len(set(ids))  # a paper is recommended at most once


def test_recommendations_stay_off_until_enough_positives(
    factory: sessionmaker[Session], sink: SMTPSink
) -> None:
    """With PAPERALERTS_RECOMMEND_MIN_POSITIVES=2, one like gives no section; a second does."""
    env = WebEnv.start(factory, sink.url, recommend_min_positives=2)
    links, matched = _first_digest(env, sink)
    day2 = arxiv_fixture(RETRIEVAL_DAY2)
    on_rule = [p for p in day2 if "retrieval" in p.title.lower()]
    off_rule = [p for p in day2 if "retrieval" not in p.title.lower()]
    _like(env, links[(matched[0], "more")])
    seed_papers(env.factory, [*arxiv_fixture(LG_OR_AI), on_rule[0]], T0 + timedelta(hours=2))
    (msg,) = digest_round(env.factory, env.settings, sink, T0 + timedelta(days=1))
    assert "You might also like" not in text_of(msg)
    _like(env, links[(matched[1], "more")])
    seed_papers(env.factory, [*off_rule, on_rule[1]], T0 + timedelta(days=1, hours=2))
    (msg,) = digest_round(env.factory, env.settings, sink, T0 + timedelta(days=2))
    assert "## You might also like" in text_of(msg)
