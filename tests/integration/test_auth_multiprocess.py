"""Two `credit-system serve` processes on one PostgreSQL database and one Redis: logout,
deactivation and the login throttle hold across processes, immediately."""

from __future__ import annotations

import uuid

import pytest
import requests

from app import build_container
from app.config import load_settings
from tests import backends
from tests.servers import ServerProcess, server_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

MAX_FAILURES = 3
PASSWORD = "correct-horse-battery"
TIMEOUT = 10


@pytest.fixture(scope="module")
def shared_backends():
    """A throwaway PostgreSQL database and the test Redis database, flushed."""
    with backends.throwaway_postgres() as database_url:
        yield database_url, backends.REDIS_URL


@pytest.fixture(scope="module")
def env(shared_backends, tmp_path_factory):
    database_url, redis_url = shared_backends
    return server_env(
        database_url, redis_url, tmp_path_factory.mktemp("multiprocess"), CREDIT_LOGIN_MAX_FAILURES=str(MAX_FAILURES)
    )


@pytest.fixture(scope="module")
def servers(env, tmp_path_factory):
    logs = tmp_path_factory.mktemp("server-logs")
    server_a = ServerProcess(env, workers=2, threads=2, log_path=logs / "a.log")
    server_b = ServerProcess(env, workers=2, threads=2, log_path=logs / "b.log")
    try:
        server_a.start()
        server_b.start()
        yield server_a.url, server_b.url
    finally:
        server_b.stop()
        server_a.stop()


@pytest.fixture(autouse=True)
def empty_redis(shared_backends):
    """Every test starts with no throttle counters and no cached auth state."""
    backends.flush_redis(shared_backends[1])


@pytest.fixture(scope="module")
def admin(env):
    """An admin made through the user service against the shared database."""
    settings = load_settings(
        environ={},
        database_url=env["CREDIT_DATABASE_URL"],
        cache_url=env["CREDIT_CACHE_URL"],
        secret_key=env["CREDIT_SECRET_KEY"],
        instance_path=env["CREDIT_INSTANCE_PATH"],
    )
    container = build_container(settings)
    try:
        container.user_service().ensure_admin("root", "root@example.com", PASSWORD)
    finally:
        container.cache().close()
        container.database().dispose()
    return "root"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def register(base: str, username: str) -> dict:
    response = requests.post(
        f"{base}/users",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return response.json()


def attempt(base: str, username: str, password: str = PASSWORD) -> requests.Response:
    return requests.post(f"{base}/auth/login", json={"username": username, "password": password}, timeout=TIMEOUT)


def login(base: str, username: str, password: str = PASSWORD) -> dict:
    response = attempt(base, username, password)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def me(base: str, headers: dict) -> requests.Response:
    return requests.get(f"{base}/users/me", headers=headers, timeout=TIMEOUT)


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_logout_on_a_is_rejected_on_b_immediately(servers):
    server_a, server_b = servers
    username = unique("ann")
    register(server_a, username)
    headers = login(server_a, username)
    # Both processes have seen (and cached) the token as valid.
    for _ in range(4):  # several requests, so likely more than one worker of each server
        assert me(server_a, headers).status_code == 200
        assert me(server_b, headers).status_code == 200
    response = requests.post(f"{server_a}/auth/logout", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 204
    for _ in range(4):
        assert_error(me(server_b, headers), 401, "unauthorized")
        assert_error(me(server_a, headers), 401, "unauthorized")


def test_deactivation_on_b_kills_the_token_on_a(servers, admin):
    server_a, server_b = servers
    username = unique("ben")
    user = register(server_a, username)
    headers = login(server_a, username)
    for _ in range(4):
        assert me(server_a, headers).status_code == 200
    admin_headers = login(server_b, admin)
    response = requests.delete(f"{server_b}/users/{user['id']}", headers=admin_headers, timeout=TIMEOUT)
    assert response.status_code == 204
    for _ in range(4):
        assert_error(me(server_a, headers), 401, "unauthorized")
    assert_error(attempt(server_a, username), 401, "invalid_credentials")


def test_password_change_on_b_revokes_the_token_on_a(servers):
    server_a, server_b = servers
    username = unique("cid")
    user = register(server_b, username)
    headers_a = login(server_a, username)
    headers_b = login(server_b, username)
    assert me(server_a, headers_a).status_code == 200
    response = requests.patch(
        f"{server_b}/users/{user['id']}",
        headers=headers_b,
        timeout=TIMEOUT,
        json={"password": "new-password-2", "current_password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    for _ in range(4):
        assert_error(me(server_a, headers_a), 401, "unauthorized")
    assert_error(attempt(server_a, username), 401, "invalid_credentials")
    assert me(server_a, login(server_a, username, "new-password-2")).status_code == 200


def test_login_failures_on_a_and_b_share_one_limit(servers):
    server_a, server_b = servers
    username = unique("dee")
    register(server_a, username)
    for n in range(MAX_FAILURES):
        base = (server_a, server_b)[n % 2]
        assert_error(attempt(base, username, "wrong-password"), 401, "invalid_credentials")
    for base in (server_b, server_a):
        throttled = attempt(base, username)  # the right password, refused
        assert_error(throttled, 429, "rate_limited")
        assert throttled.headers["Retry-After"].isdigit()
        assert 1 <= int(throttled.headers["Retry-After"]) <= 300
    # Another account from the same client still logs in on either server.
    other = unique("eve")
    register(server_b, other)
    login(server_a, other)
    login(server_b, other)
