"""Password-guessing limits through the API, on the real limiter (in-process memory, and Redis).

Each password check is counted before it runs, so parallel guesses cannot overrun the
limit; one account is one bucket whichever identifier names it; `current_password` counts
too; the owner's right password from a known address gets through a lockout; and a client
address may only register so many users.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from dependency_injector import providers

from app.services.passwords import Passwords
from app.testing import DEFAULT_PASSWORD, assert_error, bearer, login, register
from tests import backends

LIMIT = 5
PARALLEL_GUESSES = 30


class CountingPasswords(Passwords):
    """Real Argon2id (at a test cost) that counts how many passwords it was asked to verify."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024)
        self.verified = 0
        self._lock = threading.Lock()

    def verify(self, password_hash, password) -> bool:
        with self._lock:
            self.verified += 1
        return super().verify(password_hash, password)


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.integration)],
)
def storage(request):
    """The throttle's storage: the in-process one, or a real Redis shared by every process."""
    if request.param == "memory":
        return "memory://"
    url = request.getfixturevalue("redis_url")
    backends.flush_redis(url)
    return url


@pytest.fixture
def passwords():
    return CountingPasswords()


pytestmark = pytest.mark.credit_settings(login_max_failures=LIMIT, registrations_per_address=3)


@pytest.fixture
def credit_cache_url(storage):
    return storage


@pytest.fixture
def credit_container(credit_container, passwords):
    credit_container.passwords.override(providers.Object(passwords))
    return credit_container


def attempt(client, identifier: str, password: str, address: str = "127.0.0.1"):
    return client.post(
        "/auth/login", json={"username": identifier, "password": password}, environ_overrides={"REMOTE_ADDR": address}
    )


def test_parallel_wrong_passwords_are_evaluated_at_most_the_limit(app, passwords):
    client = app.test_client()
    register(client, "target")
    passwords.verified = 0
    barrier = threading.Barrier(PARALLEL_GUESSES)

    def guess(n: int) -> int:
        barrier.wait()
        return attempt(app.test_client(), "target", f"wrong-{n}").status_code

    with ThreadPoolExecutor(max_workers=PARALLEL_GUESSES) as pool:
        statuses = list(pool.map(guess, range(PARALLEL_GUESSES)))
    assert passwords.verified <= LIMIT
    assert statuses.count(401) == passwords.verified and statuses.count(429) == PARALLEL_GUESSES - passwords.verified
    assert statuses.count(401) >= 1  # the throttle let some through: it limited, it did not just refuse


def test_username_and_email_of_one_account_share_one_bucket(app):
    client = app.test_client()
    register(client, "dora", email="dora@example.com")
    for n in range(LIMIT):
        identifier = ("dora", "DORA@example.com")[n % 2]
        assert_error(attempt(client, identifier, "wrong", address=f"10.0.0.{n}"), 401, "invalid_credentials")
    for identifier in ("Dora@Example.com", "dora"):
        assert_error(attempt(client, identifier, "wrong", address="10.0.1.1"), 429, "rate_limited")


def test_an_unknown_identifier_is_throttled_exactly_like_an_account(app):
    client = app.test_client()
    register(client, "real")
    answers = {}
    for name in ("real", "ghost"):
        answers[name] = [attempt(client, name, "wrong", address=f"10.1.0.{n}") for n in range(LIMIT + 1)]
    for real, ghost in zip(answers["real"], answers["ghost"], strict=True):
        assert (real.status_code, real.get_json()["error"]["code"]) == (
            ghost.status_code,
            ghost.get_json()["error"]["code"],
        )
    assert answers["ghost"][-1].status_code == 429


def test_the_owner_gets_in_from_a_known_address_while_the_account_is_locked(app, passwords):
    client = app.test_client()
    register(client, "owner")
    login(client, "owner", environ_overrides={"REMOTE_ADDR": "192.0.2.10"})  # the owner's usual address
    for n in range(LIMIT):  # anyone, from anywhere, exhausts the account's bucket
        attempt(client, "owner", "guess", address=f"198.51.100.{n}")
    before = passwords.verified
    # The attacker's next guesses, from any new address, are refused unchecked...
    for n in range(3):
        assert_error(attempt(client, "owner", "guess", address=f"198.51.100.{50 + n}"), 429, "rate_limited")
        assert_error(attempt(client, "owner", DEFAULT_PASSWORD, address="203.0.113.7"), 429, "rate_limited")
    assert passwords.verified == before
    # ...while the owner, from the address it logged in from before, gets in.
    assert attempt(client, "owner", DEFAULT_PASSWORD, address="192.0.2.10").status_code == 200
    # And that did not reset the lockout for everyone else.
    assert_error(attempt(client, "owner", "guess", address="198.51.100.99"), 429, "rate_limited")


def test_current_password_counts_in_the_account_bucket(app):
    client = app.test_client()
    user = register(client, "pat")
    headers = bearer(login(client, "pat"))
    change = {"password": "new-password-123", "current_password": "guess"}
    statuses = [
        client.patch(
            f"/users/{user['id']}", json=change, headers=headers, environ_overrides={"REMOTE_ADDR": "10.2.0.1"}
        )
        for _ in range(LIMIT + 1)
    ]
    assert [r.status_code for r in statuses] == [401] * LIMIT + [429]
    assert statuses[-1].headers["Retry-After"].isdigit()
    # One bucket with logins: a login from a new address is refused now too.
    assert_error(attempt(client, "pat", DEFAULT_PASSWORD, address="10.2.0.2"), 429, "rate_limited")


def test_registrations_are_limited_per_client_address(app):
    client = app.test_client()

    def sign_up(name: str, address: str):
        body = {"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD}
        return client.post("/users", json=body, environ_overrides={"REMOTE_ADDR": address})

    assert [sign_up(f"bulk{n}", "10.3.0.1").status_code for n in range(3)] == [201] * 3
    refused = sign_up("bulk3", "10.3.0.1")
    error = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert error["details"]["retry_after"] == int(refused.headers["Retry-After"])
    assert sign_up("other", "10.3.0.2").status_code == 201
