"""Small, generic helpers for tests that talk to the API through the Flask test client."""

from __future__ import annotations

import base64
import json

from dependency_injector import providers

from app.http.principal import register_principal_loader
from app.services.principal import Principal

DEFAULT_PASSWORD = "correct-horse-battery"
METRICS_TOKEN = "test-metrics-token-0123456789abcdef"  # the test apps' CREDIT_METRICS_TOKEN


def bearer(token: str) -> dict[str, str]:
    """Headers carrying `token` as a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def cursor_of(*values) -> str:
    """A pagination cursor as the API encodes one, holding any JSON `values` (to forge one)."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def register(client, username: str, password: str = DEFAULT_PASSWORD, email: str | None = None) -> dict:
    """POST /users and return the created User (asserts 201)."""
    response = client.post(
        "/users", json={"username": username, "email": email or f"{username}@example.com", "password": password}
    )
    assert response.status_code == 201, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def login(client, username: str, password: str = DEFAULT_PASSWORD, **kwargs) -> str:
    """POST /auth/login and return the access token (asserts 200); kwargs go to client.post."""
    response = client.post("/auth/login", json={"username": username, "password": password}, **kwargs)
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
    return response.get_json()["access_token"]


def make_admin(app, username: str = "admin", password: str = DEFAULT_PASSWORD, email: str | None = None) -> dict:
    """Create (or promote) an admin through the user service; returns {id, username, email}."""
    user, _created = app.container.user_service().ensure_admin(username, email or f"{username}@example.com", password)
    return {"id": user.id, "username": user.username, "email": user.email}


def assert_error(response, status: int, code: str) -> dict:
    """Assert the API's error body with this status and code; return its `error` object."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


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


def ledger_snapshot(app) -> dict:
    """What a money request can write, read from the database itself (not through the API or cache):
    row counts of transactions, ledger entries and idempotency keys, and every wallet's balance."""
    from sqlalchemy import func, select

    from app.infrastructure.tables import Account, IdempotencyKey, LedgerEntry, Transaction

    with app.container.database().engine.connect() as conn:
        snapshot = {
            name: conn.scalar(select(func.count()).select_from(table))
            for name, table in (
                ("transactions", Transaction),
                ("entries", LedgerEntry),
                ("idempotency_keys", IdempotencyKey),
            )
        }
        snapshot["balances"] = dict(
            conn.execute(select(Account.user_id, Account.balance).where(Account.kind == "user")).all()
        )
    return snapshot


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


def rewired(provider, cls):
    """A provider building `cls` with exactly the injections of `provider` (for overrides)."""
    return providers.Singleton(cls, *provider.args, **provider.kwargs)


def as_admin(app) -> None:
    """Make every request of this app look like an admin's to the kernel's endpoints."""
    register_principal_loader(app, lambda: Principal("u1", "admin"))


def as_user(app) -> None:
    register_principal_loader(app, lambda: Principal("u2", "user"))
