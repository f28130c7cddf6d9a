"""The one place where every failure becomes the API's error body."""

from __future__ import annotations

import logging

from flask import Response, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.services.errors import DomainError, RateLimited, Unauthorized

log = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "bad_request": 400,
    "validation_error": 422,
    "unauthorized": 401,
    "invalid_credentials": 401,
    "forbidden": 403,
    "not_found": 404,
    "username_taken": 409,
    "email_taken": 409,
    "insufficient_funds": 409,
    "already_reversed": 409,
    "idempotency_conflict": 409,
    "idempotency_key_reused": 422,
    "rate_limited": 429,
    "service_unavailable": 503,
    "module_unavailable": 503,
}

CODE_BY_HTTP_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def error_response(
    status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _validation_details(data: dict) -> dict:
    """Flatten webargs' {location: {field: [...]}} into {field: [...]}."""
    messages = data.get("messages") or data.get("errors") or {}
    details: dict = {}
    for location_errors in messages.values():
        if isinstance(location_errors, dict):
            details.update(location_errors)
        else:
            details.setdefault("_schema", []).extend(location_errors)
    return details


def handle_domain_error(exc: DomainError) -> Response:
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    return error_response(STATUS_BY_CODE.get(exc.code, 400), exc.code, exc.message, exc.details, headers)


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500 and status != 503:
        return handle_unexpected(exc)
    code = CODE_BY_HTTP_STATUS.get(status, "bad_request")
    data = getattr(exc, "data", None) or {}
    details = _validation_details(data) if status in (400, 422) else {}
    message = {
        400: "the request body is not valid JSON" if status == 400 and details else "bad request",
        404: "no such resource",
        405: "method not allowed on this resource",
        413: "the request body is too large",
        414: "the request line is too long",
        422: "the request has invalid fields",
    }.get(status, exc.description or exc.name)
    headers = dict(data.get("headers") or {})
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return error_response(status, code, message, details, headers)


def handle_database_error(exc: DBAPIError | PoolTimeout) -> Response:
    # A lost connection or a timed-out pool is the backend being down, not a bug.
    if isinstance(exc, (OperationalError, PoolTimeout)) or getattr(exc, "connection_invalidated", False):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            503, "service_unavailable", "the database is unavailable; retry later", headers={"Retry-After": "1"}
        )
    return handle_unexpected(exc)


def handle_unexpected(exc: BaseException) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


def register_error_handlers(app) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
