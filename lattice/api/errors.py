"""Every error the head answers with: JSON ``{"error": {"type", "message", "field"?, "hint"?}}``.

Handlers raise domain errors (SpecError, NotFound, ...) or :class:`HTTPError`; this module is the one
place that maps them to a status and body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lattice.core.dag import SpecError
from lattice.core.errors import Conflict, NotFound, StoreUnavailable

log = logging.getLogger("lattice.api")


class HTTPError(Exception):
    def __init__(self, status: int, type: str, message: str, field: str | None = None,
                 hint: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.field, self.hint = status, type, message, field, hint
        self.headers = headers


def error_body(type: str, message: str, field: str | None = None, hint: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type, "message": message}
    if field is not None:
        error["field"] = field
    if hint is not None:
        error["hint"] = hint
    return {"error": error}


def error_response(status: int, type: str, message: str, field: str | None = None,
                   hint: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(type, message, field, hint), status_code=status, headers=headers)


def body_validation_error(exc: ValidationError) -> RequestValidationError:
    """A body a route validated itself (``Model.model_validate_json``), failed as FastAPI fails a declared
    body: the same 422, its ``field`` named from the error's location in the body."""
    return RequestValidationError([{**error, "loc": ("body", *error["loc"])}
                                   for error in exc.errors(include_url=False, include_input=False)])


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("function-after" in part or "function-before" in part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


_STORE_HINT = ("the head's store cannot write now (a full disk, or its database is down); nothing committed is "
               "lost and the head recovers by itself once it can write again: free space, then retry")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _loc_to_field(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return error_response(422, "validation_error", f"{field}: {message}{extra}", field,
                              "see the OpenAPI document at /docs for the expected shape")

    @app.exception_handler(SpecError)
    async def _spec(_: Request, exc: SpecError) -> JSONResponse:
        return error_response(422, "invalid_workflow", exc.message, exc.field, exc.hint)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc), f"{exc.kind}_id",
                              f"list {exc.kind}s with GET /api/v1/{exc.kind}s" if exc.kind == "run" else None)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return error_response(503, "store_unavailable", str(exc), hint=_STORE_HINT, headers={"Retry-After": "5"})

    @app.exception_handler(OperationalError)
    async def _store_refused(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("the store refused an operation: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return error_response(503, "store_unavailable", f"the store refused the operation: {exc.orig}",
                              hint=_STORE_HINT, headers={"Retry-After": "5"})

    @app.exception_handler(HTTPError)
    async def _http_error(_: Request, exc: HTTPError) -> JSONResponse:
        headers = {**({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}), **(exc.headers or {})}
        return error_response(exc.status, exc.type, exc.message, exc.field, exc.hint, headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}",
                              hint="this is a bug in Lattice; the head's log has the traceback")
