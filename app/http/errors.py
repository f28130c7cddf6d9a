"""The one place where every failure becomes the API's error body."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from flask import Response, current_app, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.infrastructure.migrations import SchemaNotCurrent
from app.services.errors import DomainError, RateLimited, Unauthorized

if TYPE_CHECKING:
    from app.kernel.manager import ModuleState

log = logging.getLogger(__name__)


class ErrorDoc(NamedTuple):
    """What the API says about one error code: its status, its meaning, a `details` example."""

    status: int
    description: str
    example: dict[str, Any]


# The codes the HTTP edge answers with itself; every other code is a DomainError class's.
EDGE_ERRORS: dict[str, ErrorDoc] = {
    "bad_request": ErrorDoc(400, "the body is not valid JSON, or not a JSON object", {}),
    "method_not_allowed": ErrorDoc(405, "the resource does not answer this method; `Allow` lists those it does", {}),
    "payload_too_large": ErrorDoc(
        413, "the body is larger than the server accepts; `details.limit_bytes` is the limit", {"limit_bytes": 65536}
    ),
    "uri_too_long": ErrorDoc(414, "the request line (path and query string) is longer than the server accepts", {}),
    "unsupported_media_type": ErrorDoc(415, "a body sent without `Content-Type: application/json`", {}),
    "internal_error": ErrorDoc(500, "an unexpected failure; the body never carries a stack trace or SQL", {}),
    "module_unavailable": ErrorDoc(
        503,
        "the module serving this path failed to start, or depends on one that did; retry later",
        {"module": "wallet_module", "status": "failed"},
    ),
    "service_unavailable": ErrorDoc(
        503, "a required backend (the database) is unavailable, or its schema is not migrated yet; retry later", {}
    ),
}


class BodyRefused(Exception):
    """A request body the API cannot use (app.http.body): answered with `status` and `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _declaring_codes(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    """cls's subclasses (imported so far) that declare a code of their own, parents first."""
    for sub in cls.__subclasses__():
        if "code" in vars(sub):
            yield sub
        yield from _declaring_codes(sub)


def error_catalog() -> dict[str, ErrorDoc]:
    """Every error code the API answers with: the edge's own, then each DomainError class's."""
    catalog = dict(EDGE_ERRORS)
    for cls in _declaring_codes(DomainError):
        if cls.code in catalog:
            raise TypeError(f"error code {cls.code!r} of {cls.__name__} is already declared")
        catalog[cls.code] = ErrorDoc(cls.status, cls.description, cls.example)
    return catalog


STATUS_BY_CODE = {code: doc.status for code, doc in error_catalog().items()}

# The code a bare HTTP status answers with (werkzeug's HTTPExceptions, gunicorn's refusals).
CODE_BY_HTTP_STATUS = {
    STATUS_BY_CODE[code]: code
    for code in (
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "payload_too_large",
        "uri_too_long",
        "unsupported_media_type",
        "validation_error",
        "rate_limited",
        "service_unavailable",
    )
}


def error_response(
    status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def module_unavailable_view(name: str, state: ModuleState) -> Callable[..., Response]:
    """The view answering for a failed or skipped module's paths (app.kernel.manager.UnavailableView)."""

    def unavailable(**_ignored) -> Response:
        return error_response(
            503,
            "module_unavailable",
            f"module {name} is {state.status}",
            {"module": name, "status": state.status},
            {"Retry-After": "30"},
        )

    return unavailable


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
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


def handle_body_refused(exc: BodyRefused) -> Response:
    return error_response(exc.status, exc.code, exc.message)


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500 and status != 503:
        return handle_unexpected(exc)
    code = CODE_BY_HTTP_STATUS.get(status, "bad_request")
    data = getattr(exc, "data", None) or {}
    details = _validation_details(data) if status in (400, 422) else {}
    if status == 413:  # no Retry-After: the same body will never fit
        details = {"limit_bytes": current_app.config["MAX_CONTENT_LENGTH"]}
    message = {
        400: "the request body is not valid JSON" if status == 400 and details else "bad request",
        404: "no such resource",
        405: "method not allowed on this resource",
        413: "the request body is too large",
        414: "the request line is too long",
        422: "the request has invalid fields",
    }.get(status, exc.description or exc.name)
    headers = dict(data.get("headers") or {})
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
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


def handle_schema_not_current(exc: SchemaNotCurrent) -> Response:
    # The database answers, but not with the tables this code needs: say so, not "unavailable".
    return error_response(
        503,
        "service_unavailable",
        f"{exc.state.problem}; the service is waiting for an operator to migrate its database, retry later",
        headers={"Retry-After": "30"},
    )


def handle_unexpected(exc: BaseException) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


def register_error_handlers(app) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(BodyRefused, handle_body_refused)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
    app.register_error_handler(SchemaNotCurrent, handle_schema_not_current)
    app.register_error_handler(Exception, handle_unexpected)
