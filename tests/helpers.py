"""Small, generic helpers for tests that talk to the API through the Flask test client.

The ones a module author needs too (assert_error, ledger_snapshot, rewired, register, login,
make_admin, FakeCache, ...) are in the credit-system pytest plugin, app/testing; this module
re-exports them for the tests that import them from here."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import TypeVar

from app.http.principal import register_principal_loader
from app.modules.wallet_module import WalletModule
from app.services.principal import Principal
from app.testing import (  # noqa: F401  (the plugin's helpers, re-exported for the tests that import them from here)
    DEFAULT_PASSWORD,
    assert_error,
    bearer,
    failing,
    ledger_snapshot,
    login,
    make_admin,
    register,
    rewired,
)

METRICS_TOKEN = "test-metrics-token-0123456789abcdef"  # the test apps' CREDIT_METRICS_TOKEN

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 3.0, interval: float = 0.05) -> T:
    """check()'s first truthy value within timeout (polled every interval), else its last."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(interval)


def cursor_of(*values) -> str:
    """A pagination cursor as the API encodes one, holding any JSON `values` (to forge one)."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


# -- money ------------------------------------------------------------------------------


def user_with_token(client, username: str) -> tuple[dict, dict[str, str]]:
    """Register `username`, log in, and return (User, bearer headers)."""
    user = register(client, username)
    return user, bearer(login(client, username))


def deposit(client, admin_headers: dict, user_id: str, amount: int, **fields) -> dict:
    """POST /wallet/deposit as an admin and return the Transaction (asserts 201)."""
    response = client.post(
        "/wallet/deposit", json={"user_id": user_id, "amount": amount, **fields}, headers=admin_headers
    )
    assert response.status_code == 201, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def balance_of(client, headers: dict, user_id: str) -> int:
    """GET /wallet/balance/{user_id} and return the balance (asserts 200)."""
    response = client.get(f"/wallet/balance/{user_id}", headers=headers)
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
    return response.get_json()["balance"]


MISSING = object()  # a body field left out entirely

# Every amount the contract refuses with 422 validation_error: only a JSON integer in
# 1..1_000_000_000_000 is money. (id, value) pairs for pytest.mark.parametrize.
INVALID_AMOUNTS = [
    ("float", 10.5),
    ("integral-float", 10.0),
    ("string", "10"),
    ("true", True),
    ("false", False),
    ("null", None),
    ("zero", 0),
    ("negative", -1),
    ("large-negative", -(10**12)),
    ("above-max", 1_000_000_000_001),
    ("2**63", 2**63),
    ("2**64+1", 2**64 + 1),
    ("list", [10]),
    ("object", {"value": 10}),
    ("missing", MISSING),
]


def with_field(body: dict, name: str, value) -> dict:
    """A copy of body with `name` set to value, or removed when value is MISSING."""
    body = dict(body)
    if value is MISSING:
        body.pop(name, None)
    else:
        body[name] = value
    return body


def as_admin(app) -> None:
    """Make every request of this app look like an admin's to the kernel's endpoints."""
    register_principal_loader(app, lambda: Principal("u1", "admin"))


def as_user(app) -> None:
    register_principal_loader(app, lambda: Principal("u2", "user"))


# The wallet module failing at start-up (its dependents are then skipped).
FailingWallet = failing(WalletModule, "wallet backend exploded")
