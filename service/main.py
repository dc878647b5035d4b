"""The app factory: settings in, a FastAPI app with its routers, middleware and lifespan out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from service import actions, routing
from service.batching import Coalescer
from service.config import Settings
from service.errors import install_error_handlers
from service.fastroute import FastRoute, QuickRouteMiddleware
from service.metrics import Metrics
from service.middleware import BodyLimitMiddleware, MetricsMiddleware
from service.routers import ROUTERS
from service.state import KeyCache, Runtime, settle_heap
from service.store.db import make_engine, migrate


def _start(settings: Settings, metrics: Metrics) -> Runtime:
    """Open the store (migrated to head), load the model if one is named, sync its reps."""
    engine = make_engine(settings.resolved_database_url())
    migrate(engine)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        metrics=metrics,
        keys=KeyCache(settings.key_cache_seconds),
    )
    runtime.route_batches = Coalescer(
        partial(routing.route_batch, runtime),
        max_items=settings.max_items,
        size=lambda item: len(item[1].leads),
        linger=settings.route_linger_ms / 1e3,
    )
    if settings.model_path is not None:
        runtime.model = actions.load_model(settings.model_path)
        actions.sync_reps(engine, runtime.model)
    settle_heap()
    return runtime


def create_app(settings: Settings) -> FastAPI:
    """Build the leadrank API for ``settings`` (the store and model open at startup)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Runtime]]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        runtime = await run_in_threadpool(_start, settings, metrics)
        app.state.runtime = runtime
        yield {"runtime": runtime}
        runtime.engine.dispose()

    app = FastAPI(
        title="leadrank",
        summary="Lead scores, per-rep ranking, routing and lookalikes for sales teams.",
        version="1",
        lifespan=lifespan,
    )
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    metrics = Metrics()
    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, FastRoute) and type(route).run is not None:
            app.add_middleware(QuickRouteMiddleware, route=route)  # inside the two below
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """``create_app(Settings())``: the factory uvicorn workers import (``--factory``)."""
    return create_app(Settings())
