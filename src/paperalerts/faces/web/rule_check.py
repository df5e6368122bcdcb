"""Checking a rule's text: the verdict type, and ``POST /validate`` that the pages' script calls
for live validation (the JSON API's rule check returns the same verdict). Both are
`core.rules.lint.check_rule_text`, the check every surface shares: a lowercase operator word
("diffusion or transformer") is refused with the fix, never shown as valid."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from paperalerts.core.rules.lint import check_rule_text

router = APIRouter()


class RuleText(BaseModel):
    query: str = Field(max_length=5000, description="Rule text in the rule language.")


class RuleWarningOut(BaseModel):
    """Something in a rule that parses but probably means something else (it refuses the
    rule): what, where (0-based character position), and the rule as probably meant."""

    message: str
    position: int
    suggestion: str = ""


class RuleCheck(BaseModel):
    """A rule's verdict: ``ok`` with the normalised form; or the problem (a parse error, or the
    first of `warnings`) with its position, a hint (the parser's, or "did you mean: ...") and
    `message`, all of it on one line."""

    ok: bool
    normalized: str | None = None
    error: str | None = None
    position: int | None = None
    hint: str | None = None
    message: str | None = None
    warnings: list[RuleWarningOut] = Field(
        default_factory=list,
        description="Lowercase operator words and the like: each refuses the rule.",
    )


def check(query: str) -> RuleCheck:
    v = check_rule_text(query)
    warnings = [RuleWarningOut(message=w.message, position=w.position, suggestion=w.suggestion)
                for w in v.warnings]  # fmt: skip
    if v.ok:
        return RuleCheck(ok=True, normalized=v.normalized, warnings=warnings)
    return RuleCheck(ok=False, error=v.error, position=v.position, hint=v.hint,
                     message=v.message, warnings=warnings)  # fmt: skip


@router.post("/validate", response_model=RuleCheck)
def validate(body: RuleText) -> RuleCheck:
    """Live validation for the rule fields (pure; no data involved, so no login)."""
    return check(body.query)
