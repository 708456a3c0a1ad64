"""The error contract of the manager's HTTP API: every failure is one JSON body.

``{"error": {"type": "NoSuchNodeError", "message": "one line", "fix": "what to do"}}``
(:class:`vhpc.models.ErrorBody`) with a fitting status code; ``client.py`` maps ``type``
back to the same class (:func:`vhpc.errors.error_from_wire`). Unexpected exceptions are
500 ``InternalError`` with their message, logged with the traceback in the manager log.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vhpc.errors import (
    AuthError,
    ClusterStateError,
    EndpointNotFoundError,
    HostNotAllowedError,
    InternalError,
    RequestError,
    RequestTooLargeError,
    ServiceUnavailableError,
    TokenRejectedError,
    UserError,
    VhpcError,
)
from vhpc.models import ErrorBody, ErrorDetail

log = logging.getLogger("vhpc.web")

# most specific first; "NoSuchNodeError"/"NodeExistsError" (vhpc.spec.grow) by name
STATUS_BY_CLASS: tuple[tuple[type[VhpcError], int], ...] = (
    (TokenRejectedError, 403),
    (AuthError, 401),
    (RequestTooLargeError, 413),
    (HostNotAllowedError, 421),
    (ServiceUnavailableError, 503),
    (RequestError, 400),
    (ClusterStateError, 409),
    (UserError, 400),
)
STATUS_BY_NAME = {"NoSuchNodeError": 404, "NodeExistsError": 409, "EndpointNotFoundError": 404}


def status_of(err: VhpcError) -> int:
    """The HTTP status code of an error: 4xx for what the caller can fix, else 500."""
    for cls in type(err).__mro__:
        if cls.__name__ in STATUS_BY_NAME:
            return STATUS_BY_NAME[cls.__name__]
    for cls, status in STATUS_BY_CLASS:
        if isinstance(err, cls):
            return status
    return 500


def one_line(text: str) -> str:
    """The first non-empty line of a message (error bodies carry one line)."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def error_body(err: VhpcError) -> ErrorBody:
    """The wire form of an error."""
    return ErrorBody(error=ErrorDetail(type=type(err).__name__,
                                       message=one_line(err.message) or type(err).__name__,
                                       fix=getattr(err, "fix", "")))


def error_json(err: VhpcError) -> tuple[int, bytes]:
    """(status, JSON bytes) for an error, for code outside FastAPI's handlers."""
    return status_of(err), error_body(err).model_dump_json().encode()


def error_response(err: VhpcError) -> JSONResponse:
    """An error as a JSON response."""
    return JSONResponse(error_body(err).model_dump(), status_code=status_of(err))


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for item in err.errors():
        loc = tuple(item.get("loc", ())) or ("body",)
        where = ".".join(str(x) for x in loc[1:] if isinstance(x, str)) or str(loc[0])
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure of a route to the error contract."""

    @app.exception_handler(VhpcError)
    async def vhpc_error(request: Request, err: VhpcError) -> JSONResponse:
        if status_of(err) >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path,
                      type(err).__name__, err, exc_info=err)
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(RequestError(
            _validation_message(err)[:500], fix="see /openapi.json for the request schema"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        if err.status_code == 404:
            return error_response(EndpointNotFoundError(
                f"no such endpoint: {request.method} {request.url.path}",
                fix="see /openapi.json; after an upgrade: 'vhpc manager restart'"))
        failure: VhpcError = RequestError(f"{err.detail}") if err.status_code < 500 else \
            InternalError(str(err.detail))
        return JSONResponse(error_body(failure).model_dump(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=err)
        failure = InternalError(f"{type(err).__name__}: {err}",
                                fix="a bug in vhpc: the manager log has the traceback")
        return error_response(failure)
