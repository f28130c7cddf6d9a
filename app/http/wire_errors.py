"""Requests gunicorn refuses before the app sees them, answered with the API's error body.

gunicorn answers a request line longer than `limit_request_line` (4094 bytes by default:
414), oversized headers (431) and malformed HTTP (400) itself, with an HTML page. The
contract says every 4xx and 5xx carries `{"error": {code, message, details}}`; install()
makes gunicorn's own answers say so too. The server calls it once, before it starts workers.
"""

from __future__ import annotations

import json

from app.http.errors import CODE_BY_HTTP_STATUS

EXTRA_CODES = {
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}
MESSAGES = {
    400: "the request is not valid HTTP",
    403: "the request is forbidden",
    413: "the request body is too large",
    414: "the request line is too long",
    431: "the request headers are too large",
    500: "an unexpected error occurred",
}


def error_body(status: int, reason: str) -> str:
    """The API's error body for a refusal made outside the app (by gunicorn, or by the proxy in front)."""
    code = {**CODE_BY_HTTP_STATUS, **EXTRA_CODES}.get(status, "bad_request" if status < 500 else "internal_error")
    error = {"code": code, "message": MESSAGES.get(status, reason.lower()), "details": {}}
    return json.dumps({"error": error}, separators=(",", ":"))


def wire_error(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 response (connection closed) with the API's error body."""
    body = error_body(status, reason).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's signature; `mesg` (it may echo the request) stays out of the body."""
    from gunicorn import util

    util.write_nonblock(sock, wire_error(status_int, reason))


def install() -> None:
    """Route gunicorn's own error pages (gunicorn.workers.base.Worker.handle_error) through write_error."""
    from gunicorn import util

    util.write_error = write_error
