"""A quicker way through FastAPI for the common ``POST /v1/route`` request.

FastAPI reads a request's body, solves its dependencies and validates its answer on
every call; under load that machinery cost more of the service's CPU time than routing
a lead did (``bench/bench_service.py`` with py-spy: ``solve_dependencies`` alone about a
fifth of the event loop's time). :class:`FastRoute` answers the plain case itself: a
JSON body that validates, a key already verified (in the key cache) whose role may
call the endpoint, a model loaded and no dependency overrides. It validates the body
with the route's own body field and serialises the answer with FastAPI's own
``serialize_response`` and response field, so the answer is the one FastAPI would send.
Anything else (a missing, unknown or uncached key, a wrong role, no model, a body that
is not JSON or does not validate, another content type) goes the usual way, which
answers exactly as before: 401, 403, 503 or a 422 naming the field. Nothing is stored
before the quick path has decided to answer, so falling back never routes twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import fastapi.routing
from fastapi.routing import APIRoute, serialize_response
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import Request
from starlette.responses import Response

from service.deps import role_may
from service.state import Loaded, Runtime
from service.store.keys import hash_key

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Run = Callable[[Runtime, Loaded, Any], Awaitable[Any]]


class FastRoute(APIRoute):
    """An ``APIRoute`` that answers plain requests without FastAPI's per-request work.

    Subclass it with ``roles`` (the key roles the endpoint admits, as in
    ``service.deps.serving``) and ``run`` (``await run(runtime, model, body)`` gives the
    endpoint's answer for a validated body); the endpoint itself must do the same, for
    the requests that go the usual way. Register it with ``route_class_override``.
    """

    roles: tuple[str, ...] = ()
    run: Run | None = None
    quick_answers = 0
    """Requests this route answered by the quick path (for tests and curiosity)."""

    def get_route_handler(self) -> Handler:
        """The usual handler, preceded by the quick path."""
        usual = super().get_route_handler()
        run = type(self).run
        if run is None or not _own_dependencies_only(self):
            return usual
        roles = frozenset(self.roles)
        body_field, response_field = self.body_field, self.response_field
        status = self.status_code or 200  # as FastAPI: the route's, else Response's

        async def handler(request: Request) -> Response:
            ready = await _ready(request, roles)
            if ready is None or body_field is None or response_field is None:
                return await usual(request)
            runtime, model, data = ready
            body, errors = body_field.validate(data, {}, loc=("body",))
            if errors:
                return await usual(request)  # FastAPI names the fields at fault
            answer = await run(runtime, model, body)
            self.quick_answers += 1
            content = await serialize_response(
                field=response_field,
                response_content=answer,
                include=self.response_model_include,
                exclude=self.response_model_exclude,
                by_alias=self.response_model_by_alias,
                exclude_unset=self.response_model_exclude_unset,
                exclude_defaults=self.response_model_exclude_defaults,
                exclude_none=self.response_model_exclude_none,
                dump_json=True,
            )
            return Response(content=content, status_code=status, media_type="application/json")

        return handler


def _own_dependencies_only(route: APIRoute) -> bool:
    """Whether ``route`` is being built with no dependencies but its endpoint's own.

    The quick path does the endpoint's checks itself and nothing else: a route included
    with router- or app-level dependencies (which the quick path would skip) keeps the
    usual handler. FastAPI builds an included route's handler with the including
    context in a (private) context variable; without it nothing can be checked, so
    the usual handler is kept too.
    """
    var = getattr(fastapi.routing, "_effective_route_context_var", None)
    if var is None:
        return False
    context = var.get()
    if context is None or getattr(context, "original_route", None) is not route:
        return True  # built for the route as declared, with its own dependencies
    dependant = getattr(context, "dependant", None)
    own = [d.call for d in route.dependant.dependencies]
    return dependant is not None and [d.call for d in dependant.dependencies] == own


async def _ready(request: Request, roles: frozenset[str]) -> tuple[Runtime, Loaded, Any] | None:
    """``(runtime, model, parsed JSON body)`` when the quick path may answer, else ``None``.

    The checks are the usual path's (``HTTPBearer``, ``service.deps``), but only a key
    the cache holds passes here: a key the cache has not seen (or has let expire) goes
    the usual way, which reads it from the database. A revoked key is therefore refused
    at the latest ``key_cache_seconds`` after its revocation, as on the usual path.
    """
    app = request.scope.get("app")
    if getattr(app, "dependency_overrides", None):
        return None
    runtime: Runtime | None = getattr(request.state, "runtime", None)
    model = None if runtime is None else runtime.model
    if runtime is None or model is None:
        return None
    headers = request.headers
    if headers.get("content-type") != "application/json":
        return None
    scheme, secret = get_authorization_scheme_param(headers.get("Authorization"))
    if scheme.lower() != "bearer" or not secret:
        return None
    role = runtime.keys.get(hash_key(secret))
    if role is None or not role_may(role, roles):
        return None
    try:
        if not await request.body():
            return None
        data = await request.json()  # cached on the request for the usual path
    except Exception:
        return None
    return runtime, model, data
