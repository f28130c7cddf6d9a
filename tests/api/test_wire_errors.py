"""Requests gunicorn refuses itself (too long, malformed) still get the API's error body."""

from __future__ import annotations

import json
import socket

import pytest

from app.http import wire_errors


@pytest.mark.parametrize(
    ("status", "reason", "code", "message"),
    [
        (414, "URI Too Long", "uri_too_long", "the request line is too long"),
        (
            431,
            "Request Header Fields Too Large",
            "request_header_fields_too_large",
            "the request headers are too large",
        ),
        (400, "Bad Request", "bad_request", "the request is not valid HTTP"),
        (500, "Internal Server Error", "internal_error", "an unexpected error occurred"),
        (417, "Expectation Failed", "expectation_failed", "expectation failed"),  # no message of its own: the reason
    ],
)
def test_wire_error_is_a_complete_json_response(status, reason, code, message):
    head, _, body = wire_errors.wire_error(status, reason).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == f"HTTP/1.1 {status} {reason}"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "application/json" and headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body) == {"error": {"code": code, "message": message, "details": {}}}


def test_install_routes_gunicorns_error_pages_through_the_error_body(monkeypatch):
    from gunicorn import util  # type: ignore[import-untyped]

    monkeypatch.setattr(util, "write_error", util.write_error)  # restored after the test
    wire_errors.install()
    assert util.write_error is wire_errors.write_error
    left, right = socket.socketpair()
    with left, right:
        util.write_error(left, 414, "URI Too Long", "Request Line is too large (<script> > 4094)")
        received = right.recv(65536)
    assert received.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"<" not in received  # no HTML, and nothing of the request echoed back
    assert json.loads(received.partition(b"\r\n\r\n")[2])["error"]["code"] == "uri_too_long"
