"""Lookalike accounts (or leads) for marketing."""

from __future__ import annotations

from fastapi import APIRouter

from service import actions, schemas
from service.deps import Marketer, ModelDep

router = APIRouter(prefix="/v1", tags=["lookalikes"])


@router.post(
    "/lookalikes",
    response_model=schemas.LookalikeResponse,
    responses={404: {"model": schemas.Problem, "description": "unknown seed"}},
)
def lookalikes(
    _: Marketer, request: schemas.LookalikeRequest, model: ModelDep
) -> schemas.LookalikeResponse:
    """The ``k`` accounts most similar to the seeds (the seeds themselves left out)."""
    return actions.lookalikes(model, request)
