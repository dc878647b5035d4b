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

:class:`QuickRouteMiddleware` takes the same quick path one step earlier, as a pure ASGI
middleware inside the app's own (body limit, metrics): FastAPI's exception middleware,
exit stack, router matching and ``request_response`` cost a plain request more than
the whole bare endpoint of ``bench/bench_service.py`` spends in its handler, and on the
service's one hot endpoint they did nothing. A request it does not answer goes on down
the usual stack with its body replayed; where the run itself fails, the failure is
handed to the route's handler, which raises it inside FastAPI, so the app's exception
handlers answer it exactly as before (and nothing runs twice).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import fastapi.routing
from fastapi.routing import APIRoute, serialize_response
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.deps import role_may
from service.middleware import replay
from service.state import Loaded, Runtime
from service.store.keys import hash_key

QUICK_FAILED = "leadrank.quick_failed"
"""Scope key: the exception the middleware's quick run raised (the handler re-raises it)."""

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
            failed = request.scope.pop(QUICK_FAILED, None)
            if failed is not None:  # QuickRouteMiddleware ran it: answer its error here
                raise failed
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


class QuickRouteMiddleware:
    """Answer ``POST route.path`` by ``route``'s quick path before FastAPI's own stack.

    The checks are :func:`_ready`'s (a cached key of an allowed role, a loaded model, a
    JSON body, no dependency overrides) plus: the route has no dependencies beyond its
    endpoint's and the app none of its own (else the usual stack must run them). The
    body is validated as ``LeadsRequest`` straight from its bytes; an answer is
    serialised as FastAPI's ``serialize_response`` does for a response model (by
    alias, nothing excluded). Add it inside the body limit and metrics middleware: it
    sets ``scope["route"]`` as FastAPI's router would, so the metrics name the route.

    Args:
        app: the rest of the stack (FastAPI's exception middleware and router).
        route: the app's :class:`FastRoute` for the path (its ``run``, ``roles``).
    """

    def __init__(self, app: ASGIApp, route: FastRoute) -> None:
        self.app = app
        self.route = route
        self.path = route.path
        self.roles = frozenset(route.roles)
        self.run = type(route).run
        body = None if route.body_field is None else route.body_field.field_info.annotation
        self.body_model: type[BaseModel] | None = None
        if isinstance(body, type) and issubclass(body, BaseModel):
            self.body_model = body
        self.status = route.status_code or 200

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != self.path
            or scope["method"] != "POST"
            or scope.get("root_path")
            or self.run is None
            or self.body_model is None
        ):
            await self.app(scope, receive, send)
            return
        ready = self._ready(scope)
        if ready is None:
            await self.app(scope, receive, send)
            return
        runtime, model = ready
        messages: list[Message] = []
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        if more or not any(chunks):
            await self.app(scope, _replay_all(messages, receive), send)
            return
        body = b"".join(chunks)
        try:
            # as FastAPI does: JSON to Python, then validated in Python mode (validating
            # the JSON text directly reads a number id 7.0 as '7', FastAPI as '7.0')
            request = self.body_model.model_validate(json.loads(body))
        except Exception:  # not JSON, or invalid: FastAPI names the fields at fault
            await self.app(scope, replay([body], None, receive), send)
            return
        try:
            answer = await self.run(runtime, model, request)
            content = type(answer).__pydantic_serializer__.to_json(answer, by_alias=True)
        except Exception as exc:  # answered by the route's handler, inside FastAPI
            scope[QUICK_FAILED] = exc
            await self.app(scope, replay([body], None, receive), send)
            return
        self.route.quick_answers += 1
        scope["route"] = self.route
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _ready(self, scope: Scope) -> tuple[Runtime, Loaded] | None:
        """``(runtime, model)`` when the quick path may answer (see :func:`_ready`)."""
        app = scope.get("app")
        if getattr(app, "dependency_overrides", None) or self.route.dependencies:
            return None
        router = getattr(app, "router", None)
        if router is None or getattr(router, "dependencies", None):
            return None
        state = scope.get("state")
        runtime: Runtime | None = None if state is None else state.get("runtime")
        model = None if runtime is None else runtime.model
        if runtime is None or model is None:
            return None
        content_type = authorization = None
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"authorization" and authorization is None:
                authorization = value
        if content_type != b"application/json" or authorization is None:
            return None
        scheme, secret = get_authorization_scheme_param(authorization.decode("latin-1"))
        if scheme.lower() != "bearer" or not secret:
            return None
        role = runtime.keys.get(hash_key(secret))
        if role is None or not role_may(role, self.roles):
            return None
        return runtime, model


def _replay_all(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` again, then defers to ``receive``."""
    pending = list(reversed(messages))

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
