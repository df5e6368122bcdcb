"""Admin: what readers said from their emails (issue 13). Feedback counts per rule and topic
(which rules produce noise: the share of "not relevant" among verdicts) and the precision of
recommendations, measured by the feedback given on them after they were shown."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from paperalerts.edges.db import feedback_repo as fr
from paperalerts.edges.db import models as m
from paperalerts.faces.web.auth import Admin
from paperalerts.faces.web.context import ctx
from paperalerts.faces.web.templating import page

router = APIRouter()


@router.get("/feedback")
def feedback_overview(request: Request, admin: Admin) -> Response:
    with ctx(request).factory() as s:
        rows = fr.noise_by_rule(s)
        precision = fr.recommendation_precision(s)
        authors = dict(s.execute(select(m.AuthorPref.action, func.count())
                                 .group_by(m.AuthorPref.action)).all())
    return page(request, "admin/feedback.html",
                {"rows": rows, "precision": precision, "authors": authors})
