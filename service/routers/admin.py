"""Administration: swap in a new model folder, change a rep's capacity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service import actions, schemas
from service.deps import Admin, EngineDep, RuntimeDep

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=schemas.ReloadResponse,
    responses={422: {"model": schemas.Problem, "description": "bad folder; old model serves"}},
)
def reload(_: Admin, request: schemas.ReloadRequest, runtime: RuntimeDep) -> schemas.ReloadResponse:
    """Load a model folder, check it, and swap it in whole; a bad one changes nothing."""
    return actions.reload(runtime, request)


@router.put(
    "/reps/{rep_id:path}",
    response_model=schemas.RepOut,
    responses={404: {"model": schemas.Problem, "description": "unknown rep"}},
)
def update_rep(
    _: Admin,
    rep_id: Annotated[str, Path(min_length=1, max_length=200, examples=["R-07"])],
    request: schemas.RepUpdate,
    engine: EngineDep,
) -> schemas.RepOut:
    """Set a rep's daily capacity and ``active`` flag; kept across model reloads."""
    return actions.update_rep(engine, rep_id, request)
