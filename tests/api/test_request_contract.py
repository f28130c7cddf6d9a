"""How the API reads a request: media type, JSON, nesting, surrogates, empty bodies, query
parameters, oversized bodies, the methods /users/me answers, and Location on every 201.

Each refusal is the API's error body with the documented status, never a 500 and never a
write: money requests are checked against the database as well.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import url_for

from app.http.body import MAX_DEPTH
from app.http.idempotency import TRANSACTION_ENDPOINT, TRANSACTION_URL
from app.testing import DEFAULT_PASSWORD, assert_error, ledger_snapshot, login, register

LONE = "\\ud800"  # as it appears in JSON text: an escape json decodes to an unpaired surrogate
JSON = "application/json"


@pytest.fixture
def people(people):
    """The plugin's admin, alice and bob; alice holds 1000."""
    people.fund(people.alice, 1000)
    return people


def _raw(client, method: str, path: str, text: str, headers: dict | None = None, content_type: str = JSON):
    return client.open(path, method=method, data=text.encode(), content_type=content_type, headers=headers or {})


# -- media type --------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_json_body_without_the_json_media_type_is_415(client, content_type):
    body = json.dumps({"username": "frank", "email": "frank@example.com", "password": DEFAULT_PASSWORD})
    response = client.post("/users", data=body, content_type=content_type)
    error = assert_error(response, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"]
    assert client.post("/auth/login", json={"username": "frank", "password": DEFAULT_PASSWORD}).status_code == 401


def test_a_json_suffix_media_type_and_a_charset_are_json(client):
    body = json.dumps({"username": "frank", "email": "frank@example.com", "password": DEFAULT_PASSWORD})
    assert client.post("/users", data=body, content_type="application/json; charset=utf-8").status_code == 201
    body = json.dumps({"username": "grace", "email": "grace@example.com", "password": DEFAULT_PASSWORD})
    assert client.post("/users", data=body, content_type="application/vnd.credit+json").status_code == 201


# -- what JSON is ------------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(app, client, people, constant):
    before = ledger_snapshot(app)
    text = f'{{"user_id": "{people.alice.id}", "amount": {constant}}}'
    error = assert_error(_raw(client, "POST", "/wallet/deposit", text, people.admin.headers), 400, "bad_request")
    assert constant.lstrip("-") in error["message"]
    assert ledger_snapshot(app) == before


@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 10_000])
def test_deeply_nested_bodies_are_400_anonymously(client, opener, closer, depth):
    """~1,000 levels used to be a RecursionError and a 500, for anyone, from a 2 KB body."""
    nested = opener * depth + "1" + closer * depth
    for text in (f'{{"username": {nested}, "password": "x"}}', nested if opener == "{" else f'{{"a": {nested}}}'):
        for path in ("/users", "/auth/login"):
            error = assert_error(_raw(client, "POST", path, text), 400, "bad_request")
            assert f"deeper than {MAX_DEPTH}" in error["message"], (path, depth)


def test_nesting_up_to_the_limit_reaches_validation(client):
    nested = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)
    error = assert_error(
        _raw(client, "POST", "/auth/login", f'{{"username": {nested}, "password": "x"}}'), 422, "validation_error"
    )
    assert set(error["details"]) == {"username"}


# -- lone surrogates ---------------------------------------------------------------------------


def _with(body: dict, field: str) -> str:
    """body as JSON text with `field` holding a lone surrogate."""
    marker = "__surrogate__"
    return json.dumps({**body, field: marker}).replace(f'"{marker}"', f'"a{LONE}b"')


def test_a_lone_surrogate_in_any_registration_or_login_field_is_422_on_that_field(client, caplog):
    register(client, "frank")
    bodies = {
        "/users": {"username": "grace", "email": "grace@example.com", "password": DEFAULT_PASSWORD},
        "/auth/login": {"username": "frank", "password": DEFAULT_PASSWORD},
    }
    with caplog.at_level(logging.WARNING):
        for path, body in bodies.items():
            for field in body:
                error = assert_error(_raw(client, "POST", path, _with(body, field)), 422, "validation_error")
                assert list(error["details"]) == [field], (path, field)
                assert "surrogate" in error["details"][field][0]
    # Nothing reached the throttle: it neither counted these nor failed open on them.
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING], caplog.records
    for _ in range(8):
        _raw(client, "POST", "/auth/login", _with({"username": "frank", "password": "x"}, "password"))
    assert client.post("/auth/login", json={"username": "frank", "password": DEFAULT_PASSWORD}).status_code == 200
    assert client.post("/auth/login", json={"username": "grace", "password": DEFAULT_PASSWORD}).status_code == 401


def test_a_lone_surrogate_in_a_password_change_is_422(client, people):
    path = f"/users/{people.alice.id}"
    body = {"password": "new-password-123", "current_password": DEFAULT_PASSWORD, "email": "a@example.com"}
    for field in body:
        error = assert_error(
            _raw(client, "PATCH", path, _with(body, field), people.alice.headers), 422, "validation_error"
        )
        assert list(error["details"]) == [field]
    assert login(client, "alice")  # the password did not change


def test_a_lone_surrogate_in_any_money_field_is_422_and_moves_nothing(app, client, people):
    tx = client.get("/transactions", headers=people.alice.headers).get_json()["items"][0]["id"]
    cases = [
        ("/wallet/deposit", people.admin.headers, {"user_id": people.alice.id, "amount": 5, "description": "d"}),
        ("/wallet/withdraw", people.alice.headers, {"user_id": people.alice.id, "amount": 5, "description": "d"}),
        (
            "/transactions",
            people.alice.headers,
            {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 5, "description": "d"},
        ),
        (f"/transactions/{tx}/reverse", people.admin.headers, {"reason": "r"}),
    ]
    before = ledger_snapshot(app)
    for path, headers, body in cases:
        for field in body:
            if isinstance(body[field], int):
                continue
            keyed = {**headers, "Idempotency-Key": f"k-{path}-{field}"}
            error = assert_error(_raw(client, "POST", path, _with(body, field), keyed), 422, "validation_error")
            assert list(error["details"]) == [field], (path, field)
    assert ledger_snapshot(app) == before


def test_a_surrogate_pair_is_an_ordinary_character(client, people):
    text = json.dumps({"user_id": people.alice.id, "amount": 5, "description": "\U0001f600"})
    assert "\\ud83d\\ude00" in text
    response = _raw(client, "POST", "/wallet/deposit", text, people.admin.headers)
    assert response.status_code == 201 and response.get_json()["description"] == "\U0001f600"


def test_a_lone_surrogate_in_a_field_name_is_422_too(client):
    text = json.dumps({"username": "frank", "password": "x"}).replace('"password"', f'"pass{LONE}"')
    error = assert_error(_raw(client, "POST", "/auth/login", text), 422, "validation_error")
    assert "_schema" in error["details"]


def test_a_token_is_checked_before_a_surrogate_field(client, people):
    text = _with({"user_id": people.alice.id, "amount": 5, "description": "d"}, "description")
    assert_error(_raw(client, "POST", "/wallet/deposit", text), 401, "unauthorized")


# -- empty bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [JSON, None])
def test_an_empty_body_where_one_is_required_is_400(client, people, content_type):
    requests = [
        ("POST", "/users", {}),
        ("POST", "/auth/login", {}),
        ("POST", "/wallet/deposit", people.admin.headers),
        ("POST", "/wallet/withdraw", people.alice.headers),
        ("POST", "/transactions", people.alice.headers),
        ("PATCH", f"/users/{people.alice.id}", people.alice.headers),
    ]
    for method, path, headers in requests:
        response = client.open(path, method=method, data=b"", content_type=content_type, headers=headers)
        error = assert_error(response, 400, "bad_request")
        assert "requires a JSON object" in error["message"], (method, path)
    assert client.patch(f"/users/{people.alice.id}", json={}, headers=people.alice.headers).status_code == 200


@pytest.mark.parametrize("content_type", [JSON, None])
def test_an_empty_body_where_it_is_optional_is_an_empty_object(app, client, people, content_type):
    tx = client.get("/transactions", headers=people.alice.headers).get_json()["items"][0]["id"]
    response = client.post(
        f"/transactions/{tx}/reverse", data=b"", content_type=content_type, headers=people.admin.headers
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["reverses"] == tx and response.get_json()["description"] is None


@pytest.mark.parametrize("content_type", [JSON, None])
def test_logout_takes_no_body_with_or_without_a_content_type(client, people, content_type):
    assert (
        client.post("/auth/logout", data=b"", content_type=content_type, headers=people.bob.headers).status_code == 204
    )
    assert_error(client.get("/users/me", headers=people.bob.headers), 401, "unauthorized")


def test_logout_with_a_body_that_is_not_json_is_415(client, people):
    response = client.post("/auth/logout", data=b"bye", content_type="text/plain", headers=people.bob.headers)
    assert_error(response, 415, "unsupported_media_type")
    assert client.get("/users/me", headers=people.bob.headers).status_code == 200


def test_a_404_or_405_answers_before_the_body_is_read(client):
    assert_error(_raw(client, "POST", "/no/such/path", "{not json"), 404, "not_found")
    assert_error(_raw(client, "POST", "/livez", "{not json"), 405, "method_not_allowed")


# -- oversized bodies --------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_with_the_limit_and_no_retry_after(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    text = json.dumps({"username": "x" * limit, "password": "x"})
    response = _raw(client, "POST", "/auth/login", text)
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit_bytes": limit}
    assert "Retry-After" not in response.headers


def test_a_chunked_body_over_the_limit_is_413_not_a_truncated_400(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    text = json.dumps({"username": "x" * limit, "password": "x"}).encode()
    environ = {"wsgi.input_terminated": True}  # what gunicorn and the dev server say for chunked input
    response = client.post("/auth/login", input_stream=io.BytesIO(text), content_type=JSON, environ_overrides=environ)
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit_bytes": limit}


def test_a_chunked_body_at_the_limit_is_read_whole(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    head = '{"username": "frank", "password": "'
    text = (head + "x" * (limit - len(head) - 2) + '"}').encode()
    assert len(text) == limit
    environ = {"wsgi.input_terminated": True}
    response = client.post("/auth/login", input_stream=io.BytesIO(text), content_type=JSON, environ_overrides=environ)
    assert_error(response, 422, "validation_error")  # the password is longer than 1,024 characters


# -- query parameters --------------------------------------------------------------------------


def test_an_unknown_query_parameter_is_422_wherever_parameters_are_declared(client, people):
    for path, headers in (("/transactions", people.alice.headers), ("/users", people.admin.headers)):
        error = assert_error(client.get(f"{path}?limt=1", headers=headers), 422, "validation_error")
        assert error["details"] == {"limt": ["Unknown field."]}, path
        assert client.get(f"{path}?limit=1", headers=headers).status_code == 200


def test_cache_busters_do_not_break_docs_or_health(client):
    for path in ("/livez", "/readyz", "/health", "/modules/status", "/modules/wallet_module/health"):
        assert client.get(f"{path}?_=1700000000000").status_code == 200, path
    assert client.get("/docs?_=1").status_code == 200
    assert client.get("/openapi.json?v=2").status_code == 200
    assert client.get("/users/me?_=1", headers={}).status_code == 401  # no parameters: the query is ignored


# -- /users/me ---------------------------------------------------------------------------------


def test_users_me_advertises_and_answers_only_get(client, people):
    options = client.options("/users/me", headers=people.alice.headers)
    assert set(options.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    for method in ("PATCH", "DELETE", "PUT", "POST"):
        response = client.open(
            "/users/me", method=method, json={"email": "x@example.com"}, headers=people.alice.headers
        )
        assert_error(response, 405, "method_not_allowed")
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}, method
    assert client.get("/users/me", headers=people.alice.headers).get_json()["email"] == "alice@example.com"
    other = client.options(f"/users/{people.bob.id}", headers=people.alice.headers).headers["Allow"]
    assert {"GET", "PATCH", "DELETE"} <= set(other.split(", "))


# -- Location ----------------------------------------------------------------------------------


def _follow(client, response, headers) -> dict:
    assert response.status_code == 201, response.get_json()
    location = response.headers["Location"]
    followed = client.get(location, headers=headers)
    assert followed.status_code == 200, location
    assert followed.get_json() == response.get_json()
    return response.get_json()


def test_every_201_carries_the_location_of_what_it_created(client, people):
    created = client.post("/users", json={"username": "frank", "email": "f@example.com", "password": DEFAULT_PASSWORD})
    assert created.headers["Location"] == f"/users/{created.get_json()['id']}"
    _follow(client, created, people.admin.headers)

    keyed = {**people.admin.headers, "Idempotency-Key": "deposit-1"}
    body = {"user_id": people.alice.id, "amount": 7}
    first = client.post("/wallet/deposit", json=body, headers=keyed)
    assert first.headers["Location"] == f"/transactions/{first.get_json()['id']}"
    _follow(client, first, people.admin.headers)
    replay = client.post("/wallet/deposit", json=body, headers=keyed)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]

    withdrawn = client.post(
        "/wallet/withdraw", json={"user_id": people.alice.id, "amount": 1}, headers=people.alice.headers
    )
    _follow(client, withdrawn, people.alice.headers)
    moved = client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 2},
        headers=people.alice.headers,
    )
    _follow(client, moved, people.alice.headers)
    reversed_ = client.post(f"/transactions/{moved.get_json()['id']}/reverse", json={}, headers=people.admin.headers)
    _follow(client, reversed_, people.admin.headers)


def test_a_refused_money_movement_has_no_location(client, people):
    response = client.post("/wallet/withdraw", json={"user_id": people.bob.id, "amount": 1}, headers=people.bob.headers)
    assert_error(response, 409, "insufficient_funds")
    assert "Location" not in response.headers


def test_the_formatted_transaction_url_is_the_routed_one(app):
    with app.test_request_context():
        assert url_for(TRANSACTION_ENDPOINT, transaction_id="abc") == TRANSACTION_URL.format("abc")
