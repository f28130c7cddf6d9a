"""The nginx configuration `credit-system nginx-config` prints, in a real nginx in front of `serve`.

Behind it, the per-address limits still count each client (not the proxy, which every
request comes from): `serve` takes the address nginx puts in X-Forwarded-For, and a client
cannot choose it. Refusals nginx makes itself carry the API's error body. The slow-client
attack on it is in test_slow_clients.py.
"""

from __future__ import annotations

import http.client
import json

import pytest

from app.infrastructure.migrations import upgrade
from tests.helpers import DEFAULT_PASSWORD
from tests.servers import NginxProcess, ServerProcess, server_env

from .test_slow_clients import require_nginx

PER_ADDRESS = 2


@pytest.fixture
def proxied(tmp_path):
    """(nginx, serve): one sync worker (its in-process limits storage counts every request)
    allowing PER_ADDRESS sign-ups per client address, nginx in front."""
    require_nginx()
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    env = server_env(database_url, "memory://", tmp_path, CREDIT_REGISTRATIONS_PER_ADDRESS=str(PER_ADDRESS))
    with ServerProcess(env, workers=1, threads=1, log_path=tmp_path / "server.log") as server:
        with NginxProcess(f"127.0.0.1:{server.port}", tmp_path / "nginx") as nginx:
            yield nginx, server


def request(port: int, method: str, path: str, body=None, source: str = "127.0.0.1", headers=None):
    """(status, headers, parsed JSON body) of one request from the loopback address `source`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json", **(headers or {})} if data else dict(headers or {})
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return response.status, response.headers, json.loads(response.read() or b"null")
    finally:
        connection.close()


def sign_up(port: int, name: str, source: str, headers=None) -> int:
    body = {"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD}
    return request(port, "POST", "/users", body, source, headers)[0]


@pytest.mark.e2e
def test_per_address_limits_count_the_client_behind_the_proxy_not_the_proxy(proxied):
    nginx, _server = proxied
    # Two clients, each up to its own limit: were the proxy's address counted, the third would be refused.
    assert [sign_up(nginx.port, f"first{i}", "127.0.0.2") for i in range(PER_ADDRESS)] == [201] * PER_ADDRESS
    assert [sign_up(nginx.port, f"second{i}", "127.0.0.3") for i in range(PER_ADDRESS)] == [201] * PER_ADDRESS
    assert sign_up(nginx.port, "first-again", "127.0.0.2") == 429
    # A client naming another address gets nowhere: nginx replaces the header with the peer's address.
    assert sign_up(nginx.port, "forged", "127.0.0.2", {"X-Forwarded-For": "10.1.2.3"}) == 429


@pytest.mark.e2e
def test_a_client_reaching_serve_directly_cannot_choose_its_address(tmp_path):
    """X-Forwarded-For counts only from the proxies `serve --forwarded-allow-ips` names."""
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    env = server_env(database_url, "memory://", tmp_path, CREDIT_REGISTRATIONS_PER_ADDRESS=str(PER_ADDRESS))
    trusting_another = ["--forwarded-allow-ips", "127.0.0.9"]
    with ServerProcess(
        env, workers=1, threads=1, log_path=tmp_path / "server.log", extra_args=trusting_another
    ) as server:
        statuses = [
            sign_up(server.port, f"direct{i}", "127.0.0.2", {"X-Forwarded-For": f"10.0.0.{i}"})
            for i in range(PER_ADDRESS + 1)
        ]
    assert statuses == [201] * PER_ADDRESS + [429]


@pytest.mark.e2e
def test_refusals_nginx_makes_itself_carry_the_api_error_body(proxied):
    nginx, server = proxied
    answers = {
        "request line too long": request(nginx.port, "GET", "/" + "a" * 9000),
        "header too large": request(nginx.port, "GET", "/livez", headers={"X-Big": "b" * 9000}),
        "body too large for nginx": request(nginx.port, "POST", "/users", {"pad": "c" * 2_000_000}),
        "its internal location": request(nginx.port, "GET", "/.nginx-error/502"),
    }
    # Between serve's limit (64 KB) and nginx's (1 MB), serve answers, with the limit in the details.
    for_serve = request(nginx.port, "POST", "/users", {"pad": "d" * 100_000})
    server.stop()
    answers["serve stopped"] = down = request(nginx.port, "GET", "/livez")
    assert {name: (status, body["error"]["code"]) for name, (status, _, body) in answers.items()} == {
        "request line too long": (414, "uri_too_long"),
        "header too large": (431, "request_header_fields_too_large"),
        "body too large for nginx": (413, "payload_too_large"),
        "its internal location": (404, "not_found"),
        "serve stopped": (503, "service_unavailable"),
    }
    assert for_serve[0] == 413 and for_serve[2]["error"]["details"] == {"limit_bytes": 65536}
    assert down[1]["Content-Type"] == "application/json" and down[1]["X-Content-Type-Options"] == "nosniff"
