"""What gunicorn refuses before the app runs (request line or header too long) still gets the
API's error body, not gunicorn's HTML page."""

from __future__ import annotations

import pytest
import requests

from app.infrastructure.migrations import upgrade
from tests.servers import ServerProcess, server_env

OVERSIZED = "a" * 9000  # over gunicorn's limit_request_line (8190 in app.serving) and limit_request_field_size
WIRING_HINT = "gunicorn answered with its own HTML page: app.serving must call app.http.wire_errors.install()"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wire")
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    with ServerProcess(
        server_env(database_url, "memory://", tmp_path), workers=1, threads=2, log_path=tmp_path / "server.log"
    ) as server:
        yield server


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("status", "code", "message", "request_kwargs"),
    [
        (414, "uri_too_long", "the request line is too long", {"params": {"cursor": OVERSIZED}}),
        (431, "request_header_fields_too_large", "the request headers are too large", {"headers": {"X": OVERSIZED}}),
    ],
)
def test_requests_gunicorn_refuses_get_the_error_body(server, status, code, message, request_kwargs):
    response = requests.get(server.url + "/transactions", timeout=10, **request_kwargs)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json", WIRING_HINT
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.json() == {"error": {"code": code, "message": message, "details": {}}}
