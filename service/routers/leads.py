"""Scoring and routing of new leads."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from service import actions, routing, schemas
from service.deps import ROUTER_ROLES, EngineDep, ModelDep, RouterServing, Scorer
from service.fastroute import FastRoute
from service.state import Loaded, Runtime

router = APIRouter(prefix="/v1", tags=["leads"])


@router.post("/score", response_model=schemas.ScoresResponse)
def score(
    _: Scorer, request: schemas.LeadsRequest, model: ModelDep, engine: EngineDep
) -> schemas.ScoresResponse:
    """Score leads: probability of converting, 0-100 score, grade A-D and top reasons.

    Engagement events posted to ``/v1/events`` for these lead ids count in the score.
    """
    return actions.score(model, engine, request)


async def _route(
    runtime: Runtime, model: Loaded, request: schemas.LeadsRequest
) -> schemas.RouteResponse:
    """Route ``request`` with ``model``: in the next batch of concurrent requests."""
    if runtime.route_batches is None:  # an app built without its lifespan
        return await run_in_threadpool(routing.route, runtime, model, request)
    ids = [lead.lead_id for lead in request.leads]
    return await runtime.route_batches.submit((model, request), keys=ids, group=model)


class _QuickRoute(FastRoute):
    """``/v1/route`` answered without FastAPI's per-request work where nothing is amiss."""

    roles = ROUTER_ROLES
    run = staticmethod(_route)


async def route(request: schemas.LeadsRequest, ctx: RouterServing) -> schemas.RouteResponse:
    """Assign each lead to the active rep most likely to convert it, within daily capacity.

    Leads and assignments are committed before the answer; a lead sent again keeps its
    first assignment. Concurrent requests are routed together in one batch.
    """
    return await _route(ctx.runtime, ctx.model, request)


router.add_api_route(
    "/route",
    route,
    methods=["POST"],
    response_model=schemas.RouteResponse,
    route_class_override=_QuickRoute,
)
