"""Checking a rule's text: the verdict type, and ``POST /validate`` that the pages' script calls
for live validation (the JSON API's rule check returns the same verdict)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from paperalerts.core.rules import parse, to_text
from paperalerts.errors import RuleError

router = APIRouter()


class RuleText(BaseModel):
    query: str = Field(max_length=5000, description="Rule text in the rule language.")


class RuleCheck(BaseModel):
    """A rule's verdict: ``ok`` with the normalised form, or the error and its position."""

    ok: bool
    normalized: str | None = None
    error: str | None = None
    position: int | None = None
    hint: str | None = None
    message: str | None = None


def check(query: str) -> RuleCheck:
    try:
        return RuleCheck(ok=True, normalized=to_text(parse(query)))
    except RuleError as e:
        return RuleCheck(ok=False, error=e.reason, position=e.position, hint=e.hint or None,
                         message=str(e))


@router.post("/validate", response_model=RuleCheck)
def validate(body: RuleText) -> RuleCheck:
    """Live validation for the rule fields (pure; no data involved, so no login)."""
    return check(body.query)

