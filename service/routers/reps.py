"""A rep's personalised list of open leads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from service import actions, schemas
from service.deps import EngineDep, ModelDep, RepReader

router = APIRouter(prefix="/v1", tags=["reps"])


@router.get(
    "/reps/{rep_id:path}/leads",
    response_model=schemas.RepLeadsResponse,
    responses={404: {"model": schemas.Problem, "description": "unknown rep"}},
)
def rep_leads(
    caller: RepReader,
    rep_id: Annotated[str, Path(min_length=1, max_length=200, examples=["R-07"])],
    model: ModelDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=schemas.MAX_LIMIT, examples=[20])] = 50,
) -> schemas.RepLeadsResponse:
    """The rep's open leads (assigned, no won/lost outcome yet), best first.

    A ``rep:ID`` key reads its own list only; any other rep id is 403.
    """
    if caller.rep_id is not None and caller.rep_id != rep_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a rep key reads only its own leads")
    return actions.rep_leads(model, engine, rep_id, limit)
