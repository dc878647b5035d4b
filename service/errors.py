"""Errors the service raises on purpose, and the handlers that turn every error into JSON.

Every answer is ``{"detail": ...}``: a 422 lists the fields at fault with their JSON path,
a 404 names the unknown id, and an unexpected error is a bare 500 with no stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from recommender.errors import UnknownIdError

log = logging.getLogger("leadrank.service")


class FieldError(Exception):
    """A request value the library or the store rejected: 422 naming ``loc``.

    Args:
        loc: path of the field inside the request, for example ``("body", "leads", 0, "x")``.
        msg: what is wrong with it.
        status: HTTP status (422, or 404 for an id the store does not know).
    """

    def __init__(self, loc: Sequence[str | int], msg: str, status: int = 422) -> None:
        self.loc = list(loc)
        self.msg = msg
        self.status = status
        super().__init__(f"{field_name(self.loc)}: {msg}")


class NoModelError(Exception):
    """No model is loaded: the service is up but cannot score (503)."""


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "leads", 0, "x")`` -> ``leads[0].x``; ``("query", "limit")`` -> ``limit``."""
    out = ""
    for part in list(loc)[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _item(loc: Sequence[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"field": field_name(loc), "msg": msg, "type": kind, "loc": list(loc)}


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [_item(e["loc"], str(e["msg"]), str(e["type"])) for e in exc.errors()]
    return JSONResponse({"detail": items}, status_code=422)


async def _field(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldError)
    kind = "not_found" if exc.status == 404 else "value_error"
    return JSONResponse({"detail": [_item(exc.loc, exc.msg, kind)]}, status_code=exc.status)


async def _unknown(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownIdError)
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _no_model(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "no model is loaded: POST /v1/admin/reload"}, status_code=503)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(FieldError, _field)
    app.add_exception_handler(UnknownIdError, _unknown)
    app.add_exception_handler(NoModelError, _no_model)
    app.add_exception_handler(Exception, _unexpected)
