"""Dependencies: the runtime, the model serving now, and API-key authentication by role."""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from service.errors import NoModelError
from service.state import Loaded, Runtime
from service.store.db import read_transaction
from service.store.keys import hash_key, role_of


async def get_runtime(request: Request) -> Runtime:
    """The app's :class:`Runtime` (lifespan state).

    Trivial dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in
    the thread pool, a hop that cost more than the whole bare request.
    """
    runtime: Runtime = request.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_engine(runtime: RuntimeDep) -> Engine:
    """The database engine."""
    return runtime.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


async def get_model(runtime: RuntimeDep) -> Loaded:
    """The model serving now, read once per request.

    Raises:
        NoModelError: no model is loaded (503).
    """
    model = runtime.model
    if model is None:
        raise NoModelError
    return model


ModelDep = Annotated[Loaded, Depends(get_model)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, and for ``rep:ID`` keys the rep id."""

    role: str

    @property
    def rep_id(self) -> str | None:
        """The rep of a ``rep:ID`` key, else ``None``."""
        return self.role[4:] if self.role.startswith("rep:") else None


_bearer = HTTPBearer(auto_error=False, description="An API key: `leadrank keys create`.")


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"}
    )


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def authenticate(runtime: RuntimeDep, credentials: Credentials) -> Principal:
    """The caller of a request, from ``Authorization: Bearer KEY``.

    Raises:
        HTTPException: 401 when the header is missing or the key unknown.
    """
    return await _authenticate(runtime, credentials)


async def _authenticate(
    runtime: Runtime, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """:func:`authenticate` without the dependency wiring (see :func:`serving`).

    A verified key's role is trusted for ``key_cache_seconds`` (``KeyCache``): a key
    revoked in the database is refused at the latest that long after, in every worker.
    """
    if credentials is None:
        raise _unauthorized("missing API key: send Authorization: Bearer KEY")
    key_hash = hash_key(credentials.credentials)
    role = runtime.keys.get(key_hash)
    if role is None:
        role = await run_in_threadpool(_lookup, runtime, credentials.credentials)
        if role is None:
            raise _unauthorized("unknown API key in the Authorization header")
        runtime.keys.put(key_hash, role)
    return Principal(role)


def _lookup(runtime: Runtime, secret: str) -> str | None:
    with read_transaction(runtime.engine) as conn:
        return role_of(conn, secret)


CallerDep = Annotated[Principal, Depends(authenticate)]


def require(*roles: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that lets through only keys whose role is in ``roles``.

    ``"rep"`` in ``roles`` admits every ``rep:ID`` key (the route checks the id).
    """

    async def check(caller: CallerDep) -> Principal:
        return _allow(caller, roles)

    return check


def role_may(role: str, roles: Collection[str]) -> bool:
    """Whether a key of ``role`` may call an endpoint open to ``roles`` (``"rep"``: any
    ``rep:ID`` key). The one rule both the usual path and ``service.fastroute`` apply."""
    return role in roles or ("rep" in roles and role.startswith("rep:"))


def _allow(caller: Principal, roles: tuple[str, ...]) -> Principal:
    """``caller`` if its role is one of ``roles`` (``"rep"``: any ``rep:ID`` key).

    Raises:
        HTTPException: 403 naming the caller's role and the allowed ones.
    """
    if not role_may(caller.role, roles):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role '{caller.role}' may not do this; allowed: {', '.join(roles)}",
        )
    return caller


@dataclass(frozen=True)
class Serving:
    """What a model endpoint needs: the runtime, the model serving now, and the caller."""

    runtime: Runtime
    model: Loaded
    caller: Principal


def serving(*roles: str) -> Callable[..., Coroutine[Any, Any, Serving]]:
    """One dependency doing what ``require(*roles)``, ``RuntimeDep`` and ``ModelDep`` do.

    Same checks in the same order (401 missing or unknown key, 403 wrong role, 503 no
    model; all before the body is validated), but FastAPI solves two dependencies per
    request instead of eight: on ``/v1/route`` under load that solving was about a tenth
    of the service's CPU time (``bench/bench_service.py``, py-spy).
    """

    async def solve(request: Request, credentials: Credentials) -> Serving:
        runtime: Runtime = request.state.runtime
        caller = _allow(await _authenticate(runtime, credentials), roles)
        model = runtime.model
        if model is None:
            raise NoModelError
        return Serving(runtime, model, caller)

    return solve


AnyKey = Annotated[Principal, Depends(require("admin", "router", "marketer", "rep"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Router = Annotated[Principal, Depends(require("admin", "router"))]
Scorer = Annotated[Principal, Depends(require("admin", "router", "marketer"))]
Marketer = Annotated[Principal, Depends(require("admin", "marketer"))]
RepReader = Annotated[Principal, Depends(require("admin", "router", "rep"))]
ROUTER_ROLES = ("admin", "router")
"""Roles that may route leads (``/v1/route``)."""
RouterServing = Annotated[Serving, Depends(serving(*ROUTER_ROLES))]
