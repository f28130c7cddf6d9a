"""The auditor role: assigned by an admin, reads everything an admin reads, and changes
nothing but its own password (API.md, Conventions)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from app.infrastructure.tables import OutboxEvent, User
from app.testing import assert_error, bearer, ledger_snapshot, login

NEW_PASSWORD = "auditor-new-passw0rd"


@pytest.fixture
def eve(credit_client, people):
    """An auditor, made by an admin through PATCH /users/{id}, logged in again (a role change
    revokes tokens)."""
    eve = people.add("eve")
    response = credit_client.patch(f"/users/{eve.id}", json={"role": "auditor"}, headers=people.admin.headers)
    assert response.status_code == 200 and response.json["role"] == "auditor"
    return dataclasses.replace(eve, token=login(credit_client, "eve"))


def _writes(app) -> tuple:
    """Everything a write route could change: the ledger, the users' rows, the outbox."""
    with app.container.database().engine.connect() as conn:
        users = conn.execute(select(User.id, User.email, User.role, User.is_active, User.password_hash)).all()
        events = conn.scalar(select(func.count()).select_from(OutboxEvent))
    return ledger_snapshot(app), sorted(users), events


def test_only_an_admin_assigns_the_auditor_role(credit_client, people):
    response = credit_client.patch(f"/users/{people.alice.id}", json={"role": "auditor"}, headers=people.alice.headers)
    assert_error(response, 403, "forbidden")
    response = credit_client.patch(f"/users/{people.bob.id}", json={"role": "auditor"}, headers=people.admin.headers)
    assert response.status_code == 200 and response.json["role"] == "auditor"


def test_an_auditor_reads_what_an_admin_reads(credit_app, credit_client, people, eve):
    payment = people.fund(people.alice, 50)
    headers = eve.headers
    users = credit_client.get("/users?limit=200", headers=headers)
    assert users.status_code == 200 and {people.alice.id, people.bob.id, eve.id} <= {
        u["id"] for u in users.json["items"]
    }
    assert credit_client.get(f"/users/{people.alice.id}", headers=headers).json["username"] == "alice"
    assert credit_client.get(f"/wallet/balance/{people.alice.id}", headers=headers).json["balance"] == 50
    history = credit_client.get(f"/transactions?user_id={people.alice.id}", headers=headers)
    assert [t["id"] for t in history.json["items"]] == [payment["id"]]
    assert credit_client.get(f"/transactions/{payment['id']}", headers=headers).json["amount"] == 50
    feed = credit_client.get("/events?after=0&limit=200", headers=headers)
    assert feed.status_code == 200 and any(e["type"] == "transaction.posted" for e in feed.json["items"])
    assert credit_client.get("/metrics", headers=headers).status_code == 200
    status = credit_client.get("/modules/status", headers=headers).json
    assert status == credit_client.get("/modules/status", headers=people.admin.headers).json
    health = credit_client.get("/modules/connection_api/health", headers=headers).json
    assert "database" in health["details"]  # the details an admin sees, an anonymous caller does not
    assert "details" not in credit_client.get("/modules/connection_api/health").json


def test_a_user_still_reads_only_its_own(credit_client, people):
    for path in ("/users", f"/users/{people.bob.id}", f"/wallet/balance/{people.bob.id}", "/events?after=0"):
        assert_error(credit_client.get(path, headers=people.alice.headers), 403, "forbidden")


def _write_routes(people, eve, payment_id: str) -> list[tuple[str, str, dict | None]]:
    """Every write route of the core, with a body that would succeed for an admin."""
    return [
        ("patch", f"/users/{eve.id}", {"email": "eve2@example.com"}),
        ("patch", f"/users/{eve.id}", {"role": "admin"}),
        ("patch", f"/users/{eve.id}", {"is_active": False}),
        ("patch", f"/users/{eve.id}", {"password": NEW_PASSWORD, "current_password": eve.password, "email": "x@y.org"}),
        ("patch", f"/users/{people.alice.id}", {"email": "alice2@example.com"}),
        ("patch", f"/users/{people.alice.id}", {"password": NEW_PASSWORD}),
        ("delete", f"/users/{eve.id}", None),
        ("delete", f"/users/{people.alice.id}", None),
        ("post", "/wallet/deposit", {"user_id": eve.id, "amount": 5}),
        ("post", "/wallet/deposit", {"user_id": people.alice.id, "amount": 5}),
        ("post", "/wallet/withdraw", {"user_id": eve.id, "amount": 1}),
        ("post", "/wallet/withdraw", {"user_id": people.alice.id, "amount": 1}),
        ("post", "/transactions", {"from_user_id": eve.id, "to_user_id": people.bob.id, "amount": 1}),
        ("post", "/transactions", {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 1}),
        ("post", f"/transactions/{payment_id}/reverse", {}),
        ("post", "/events/deliveries/1/retry", None),
    ]


def test_an_auditor_gets_403_on_every_write_route_and_nothing_changes(credit_app, credit_client, people, eve):
    payment = people.fund(people.alice, 50)
    people.fund(eve, 10)  # its own wallet has money: refusing the withdrawal is the role, not the balance
    before = _writes(credit_app)
    for method, path, body in _write_routes(people, eve, payment["id"]):
        kwargs = {"json": body} if body is not None else {}
        response = getattr(credit_client, method)(path, headers=eve.headers, **kwargs)
        assert_error(response, 403, "forbidden"), (method, path, body)
        assert _writes(credit_app) == before, (method, path, body)
    # Idempotency-Key changes nothing: the refusal comes before any record of it.
    response = credit_client.post(
        "/transactions",
        json={"from_user_id": eve.id, "to_user_id": people.bob.id, "amount": 1},
        headers={**eve.headers, "Idempotency-Key": "k1"},
    )
    assert_error(response, 403, "forbidden")
    assert _writes(credit_app) == before


def test_every_core_write_route_is_in_the_auditors_list(credit_client, people, eve):
    """A new write route under a core prefix must be added to _write_routes (or be one an auditor may use)."""
    spec = credit_client.get("/openapi.json").json
    prefixes = ("/users", "/auth", "/wallet", "/transactions", "/events")
    writes = {
        (method, path)
        for path, operations in spec["paths"].items()
        if path.startswith(prefixes)
        for method in operations
        if method in {"post", "patch", "put", "delete"}
    }
    allowed = {("post", "/users"), ("post", "/auth/login"), ("post", "/auth/logout")}  # sign-up, log in and out

    def template(path: str) -> str:
        for name, value in (
            ("user_id", people.alice.id),
            ("user_id", eve.id),
            ("transaction_id", "T"),
            ("delivery_id", "1"),
        ):
            path = path.replace(value, "{" + name + "}")
        return path

    covered = {(method, template(path)) for method, path, _ in _write_routes(people, eve, "T")}
    assert writes - allowed <= covered, sorted(writes - allowed - covered)


def test_an_auditor_changes_its_own_password_and_logs_out(credit_client, people, eve):
    response = credit_client.patch(
        f"/users/{eve.id}", json={"password": NEW_PASSWORD, "current_password": eve.password}, headers=eve.headers
    )
    assert response.status_code == 200 and response.json["role"] == "auditor"
    token = login(credit_client, "eve", NEW_PASSWORD)
    # Its own password still needs the current one, as for anyone.
    response = credit_client.patch(f"/users/{eve.id}", json={"password": "another-passw0rd"}, headers=bearer(token))
    assert_error(response, 422, "validation_error")
    assert credit_client.post("/auth/logout", headers=bearer(token)).status_code == 204


def test_an_admin_demoted_to_auditor_keeps_the_last_admin_rule(credit_client, people):
    response = credit_client.patch(f"/users/{people.admin.id}", json={"role": "auditor"}, headers=people.admin.headers)
    assert_error(response, 409, "last_admin")
