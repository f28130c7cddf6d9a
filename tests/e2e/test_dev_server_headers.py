"""`credit-system run` (Werkzeug's server) tells no versions, and its answers carry the same
security headers as under gunicorn."""

from __future__ import annotations

import pytest
import requests

from app.infrastructure.migrations import upgrade
from tests.servers import ServerProcess, server_env


@pytest.mark.e2e
def test_the_dev_server_sends_no_version_banner(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    env = server_env(database_url, "memory://", tmp_path)
    with ServerProcess(env, command="run", log_path=tmp_path / "server.log") as server:
        responses = [requests.get(server.url + path, timeout=10) for path in ("/livez", "/no-such-path", "/docs")]
    for response in responses:
        assert response.headers["Server"] == "credit-system"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in responses[2].headers
