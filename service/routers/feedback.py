"""Outcomes and engagement events coming back from the CRM."""

from __future__ import annotations

from fastapi import APIRouter

from service import actions, schemas
from service.deps import EngineDep, Router, Scorer

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post(
    "/outcomes",
    response_model=schemas.StoredResponse,
    responses={404: {"model": schemas.Problem, "description": "unknown lead or rep"}},
)
def outcomes(
    _: Router, request: schemas.OutcomesRequest, engine: EngineDep
) -> schemas.StoredResponse:
    """Store outcomes; idempotent per (lead_id, rep_id): a retry overwrites, never adds."""
    return actions.record_outcomes(engine, request)


@router.post("/events", response_model=schemas.StoredResponse)
def events(_: Scorer, request: schemas.EventsRequest, engine: EngineDep) -> schemas.StoredResponse:
    """Append engagement events of leads (all stored, or none on error)."""
    return actions.record_events(engine, request)
