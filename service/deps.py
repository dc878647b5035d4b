"""Dependencies: the runtime, the model serving now, and API-key authentication by role."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
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


async def authenticate(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of a request, from ``Authorization: Bearer KEY``.

    Raises:
        HTTPException: 401 when the header is missing or the key unknown.
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
        allowed = caller.role in roles or (caller.rep_id is not None and "rep" in roles)
        if not allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role '{caller.role}' may not do this; allowed: {', '.join(roles)}",
            )
        return caller

    return check


AnyKey = Annotated[Principal, Depends(require("admin", "router", "marketer", "rep"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Router = Annotated[Principal, Depends(require("admin", "router"))]
Scorer = Annotated[Principal, Depends(require("admin", "router", "marketer"))]
Marketer = Annotated[Principal, Depends(require("admin", "marketer"))]
RepReader = Annotated[Principal, Depends(require("admin", "router", "rep"))]
