"""The request bodies /docs offers to "Try it out" work after the README's quick start (an admin
`admin` / `change-me-now`), once the placeholder ids are replaced by the ones the README's
reader has: their own (`GET /users/me`) and the user the POST /users example registers."""

from __future__ import annotations

import re

import pytest

from app.schemas.ledger import OTHER_USER_ID, YOUR_USER_ID
from tests.helpers import bearer

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
METHODS = {"post", "put", "patch", "delete"}


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def body_example(spec, path: str, method: str) -> dict:
    return spec["paths"][path][method]["requestBody"]["content"]["application/json"]["example"]


def with_ids(example: dict, yours: str, other: str) -> dict:
    ids = {YOUR_USER_ID: yours, OTHER_USER_ID: other}
    return {key: ids.get(value, value) if isinstance(value, str) else value for key, value in example.items()}


def test_every_json_request_body_has_an_example(spec):
    bodies = [
        (path, method)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS and "requestBody" in operation
    ]
    assert len(bodies) >= 7
    missing = [f"{method.upper()} {path}" for path, method in bodies if not body_example(spec, path, method)]
    assert not missing


def test_id_fields_show_a_uuid_and_say_where_to_get_one(spec):
    ids = {
        (name, field_name): field
        for name, schema in spec["components"]["schemas"].items()
        for field_name, field in schema.get("properties", {}).items()
        if field_name.endswith("user_id") and name in ("MoneyMovement", "Transfer")
    }
    assert len(ids) == 3
    for where, field in ids.items():
        assert UUID.match(field["example"]), where
        assert "`GET /users/me`" in field["description"], where


def test_the_examples_work_after_the_readme_quick_start(app, client, spec):
    app.container.user_service().ensure_admin("admin", "admin@example.com", "change-me-now")  # `create-admin`

    def send(method: str, path: str, body: dict, headers=None, status: int = 201) -> dict:
        response = client.open(path, method=method.upper(), json=body, headers=headers)
        assert response.status_code == status, (method, path, body, response.get_json())
        return response.get_json()

    alice = send("post", "/users", body_example(spec, "/users", "post"))
    token = send("post", "/auth/login", body_example(spec, "/auth/login", "post"), status=200)["access_token"]
    admin = bearer(token)
    me = client.get("/users/me", headers=admin).get_json()["id"]

    def example(path: str, method: str = "post") -> dict:
        return with_ids(body_example(spec, path, method), yours=me, other=alice["id"])

    send("post", "/wallet/deposit", example("/wallet/deposit"), admin)
    transfer = send("post", "/transactions", example("/transactions"), admin)
    assert (transfer["from_user_id"], transfer["to_user_id"]) == (me, alice["id"])
    send("post", "/wallet/deposit", example("/wallet/deposit"), admin)
    send("post", "/wallet/withdraw", example("/wallet/withdraw"), admin)
    reversal = send(
        "post", f"/transactions/{transfer['id']}/reverse", example("/transactions/{transaction_id}/reverse"), admin
    )
    assert reversal["reverses"] == transfer["id"]
    send("patch", f"/users/{me}", example("/users/{user_id}", "patch"), admin, status=200)
