"""What the JSON API's route modules share: the context dependency, typed path and query
parameters, the not-found and conflict errors (answered as JSON by `api.create_api`)."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from paperalerts.faces.web.api_schemas import Error
from paperalerts.faces.web.context import WebContext, ctx

IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
SafeText = Annotated[str, Query(max_length=200, pattern=r"^[^\x00-\x1f]*$")]
T = TypeVar("T")

# Answers every operation may give: a body that is not JSON (400), no or a bad token (401),
# an id that names nothing (404). FastAPI adds 422 itself wherever a request has parameters.
COMMON_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": Error, "description": "The body is not valid JSON."},
    401: {"model": Error, "description": "No valid bearer token."},
    404: {"model": Error, "description": "Nothing with that id."},
}


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def new_router() -> APIRouter:
    """A router whose operations document the common answers."""
    return APIRouter(responses=COMMON_RESPONSES)


def get_or_404(s: Session, model: type[T], id_: int) -> T:
    row = s.get(model, id_)
    if row is None:
        raise NotFound(f"no {getattr(model, '__tablename__', 'row')} {id_}")
    return row


def _context(request: Request) -> WebContext:
    return ctx(request)


Ctx = Annotated[WebContext, Depends(_context)]
