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
from starlette.exceptions import HTTPException

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


def _error_item(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic / FastAPI error as an item; a JSON syntax error names ``body``."""
    if error.get("type") == "json_invalid":
        # FastAPI puts the character offset where a field name belongs: ("body", 17)
        loc = list(error.get("loc") or ())
        where = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
        reason = (error.get("ctx") or {}).get("error") or error.get("msg")
        return _item(["body"], f"request body is not valid JSON: {reason}{where}", "json_invalid")
    return _item(error["loc"], str(error["msg"]), str(error["type"]))


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [_error_item(e) for e in exc.errors()]
    return JSONResponse({"detail": items}, status_code=422)


BODY_PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's 400 detail when reading the body failed for a reason other than JSON syntax."""


def _parse_failure(cause: BaseException | None) -> str:
    """Why FastAPI could not read a body (its 400 hides the cause)."""
    if isinstance(cause, RecursionError):
        return "nested too deeply"
    if isinstance(cause, UnicodeError):
        return "not valid UTF-8 (or UTF-16/32) text"
    if isinstance(cause, ValueError):
        return str(cause).split("\n")[0][:200]
    return "unreadable"


async def _http(request: Request, exc: Exception) -> JSONResponse:
    """Starlette/FastAPI HTTP errors, each naming what is at fault.

    A body FastAPI could not parse (invalid UTF-8, nesting deeper than the parser's
    stack, an integer of more than 4,300 digits) is a 422 naming ``body``, like any
    other invalid body; an unmatched path or method names the path.
    """
    assert isinstance(exc, HTTPException)
    status, detail = exc.status_code, exc.detail
    if status == 400 and detail == BODY_PARSE_ERROR:
        reason = _parse_failure(exc.__cause__)
        msg = f"request body is not valid JSON: {reason}"
        return JSONResponse({"detail": [_item(["body"], msg, "json_invalid")]}, status_code=422)
    if status == 404 and detail == "Not Found":
        detail = f"no such path '{request.url.path}' (see /docs)"
    elif status == 405 and detail == "Method Not Allowed":
        detail = f"method {request.method} is not allowed on '{request.url.path}'"
    return JSONResponse({"detail": detail}, status_code=status, headers=exc.headers)


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
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(FieldError, _field)
    app.add_exception_handler(UnknownIdError, _unknown)
    app.add_exception_handler(NoModelError, _no_model)
    app.add_exception_handler(Exception, _unexpected)
