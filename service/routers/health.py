"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from service import schemas
from service.deps import AnyKey, RuntimeDep
from service.store.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=schemas.Health)
async def healthz() -> schemas.Health:
    """The process is up (no key needed)."""
    return schemas.Health(status="ok")


@router.get(
    "/readyz",
    response_model=schemas.Ready,
    responses={503: {"model": schemas.Ready, "description": "no model or no database"}},
)
async def readyz(_: AnyKey, runtime: RuntimeDep) -> JSONResponse:
    """Ready to serve: a model is loaded and the database answers ``SELECT 1``."""
    model = runtime.model
    database = await run_in_threadpool(ping, runtime.engine)
    ready = model is not None and database
    body = schemas.Ready(
        status="ready" if ready else "not ready",
        model_version=None if model is None else model.version,
        database=database,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "content": {
                "text/plain": {
                    "example": 'leadrank_requests_total{method="POST",route="/v1/route",'
                    'status="200"} 42\nleadrank_model_info{version="20261101-ab12"} 1\n'
                }
            }
        }
    },
)
async def metrics(_: AnyKey, runtime: RuntimeDep) -> PlainTextResponse:
    """Requests, latency histograms and the model version, in Prometheus text format."""
    model = runtime.model
    batcher = runtime.route_batches
    text = runtime.metrics.render(
        None if model is None else model.version,
        (batcher.batches, batcher.items) if batcher is not None else (0, 0),
    )
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
