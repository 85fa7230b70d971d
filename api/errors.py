"""One error model for every failure, and the handlers that produce it.

Known errors map to 4xx/5xx with a message a user can act on; nothing reaches the client as a
bare 500 traceback.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from copilot.errors import (
    BudgetExceeded,
    Conflict,
    CopilotError,
    InvalidInput,
    ModelError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("copilot.api")
FIELD_PREFIX = re.compile(r"^([\w.\[\]-]+): ")
CHANGED_MEANWHILE = "a record this request changes was changed by another request meanwhile; reload it and try again"


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES = {
    401: {"model": ErrorBody, "description": "Missing or unknown API key"},
    403: {"model": ErrorBody, "description": "The key's role may not do this"},
    404: {"model": ErrorBody, "description": "No such record in the key's workspace"},
    409: {"model": ErrorBody, "description": "Changed meanwhile (stale version)"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ErrorBody, "description": "Invalid input; `field` names the problem"},
    429: {"model": ErrorBody, "description": "Too many failed attempts, or the workspace's model budget is spent"},
    502: {"model": ErrorBody, "description": "The model provider failed"},
    503: {"model": ErrorBody, "description": "A dependency is temporarily unavailable"},
}

STATUS_BY_ERROR: list[tuple[type[CopilotError], int, str]] = [
    (NotFound, 404, "not_found"),
    (InvalidInput, 422, "invalid_input"),
    (Conflict, 409, "conflict"),
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDenied, 403, "forbidden"),
    (Unavailable, 503, "unavailable"),
]


def error_response(status: int, kind: str, message: str, field: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = ErrorBody(error=ErrorDetail(type=kind, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def copilot_error(_request: Request, error: CopilotError) -> JSONResponse:
    message = str(error)
    if isinstance(error, RateLimited):
        response = error_response(429, "rate_limited", message)
        response.headers["Retry-After"] = str(error.retry_after_s)
        return response
    if isinstance(error, BudgetExceeded):
        return error_response(429, "budget_exceeded", message)
    if isinstance(error, ModelError):
        return error_response(
            503 if error.retryable else 502, "model_unavailable" if error.retryable else "model_failed", message
        )
    for cls, status, kind in STATUS_BY_ERROR:
        if isinstance(error, cls):
            match = FIELD_PREFIX.match(message) if status == 422 else None
            return error_response(status, kind, message, match.group(1) if match else None)
    if {cls.__name__ for cls in type(error).__mro__} & {"VectorIndexError", "EmbeddingModelError", "ModelFileError"}:
        return error_response(503, "unavailable", message)
    return error_response(400, "bad_request", message)


def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(location) or None
    return error_response(422, "invalid_input", f"{field or 'request'}: {first.get('msg', 'invalid')}", field)


def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    kinds = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 401: "unauthenticated", 403: "forbidden"}
    return error_response(error.status_code, kinds.get(error.status_code, "http_error"), str(error.detail))


def database_error(_request: Request, error: OperationalError) -> JSONResponse:
    log.warning("database unavailable: %s", error)
    return error_response(503, "database_unavailable", "the database is busy or unavailable; try again shortly")


def changed_meanwhile(_request: Request, error: StaleDataError) -> JSONResponse:
    log.info("concurrent change: %s", error)
    return error_response(409, "conflict", CHANGED_MEANWHILE)


def out_of_range(_request: Request, _error: OverflowError) -> JSONResponse:
    return error_response(422, "invalid_input", "a number in the request is too large")


def unexpected_error(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return error_response(500, "internal", "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(CopilotError, copilot_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(OperationalError, database_error)
    app.add_exception_handler(StaleDataError, changed_meanwhile)
    app.add_exception_handler(OverflowError, out_of_range)
    app.add_exception_handler(Exception, unexpected_error)
