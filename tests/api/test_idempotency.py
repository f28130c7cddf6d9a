"""Idempotency-Key on the four money routes (API.md, "Idempotency").

A replay must return the stored status and body unchanged with `Idempotent-Replayed: true`
and move nothing; the database is checked directly to prove money moved exactly once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from app.infrastructure.tables import IdempotencyKey
from app.services.idempotency import IdempotencyRequest, IdempotencyStore
from app.testing import assert_error, ledger_snapshot
from tests.helpers import balance_of, deposit

REPLAYED = "Idempotent-Replayed"


def keyed(headers: dict, key: str) -> dict:
    return {**headers, "Idempotency-Key": key}


def post(client, path, body, headers, key=None):
    return client.post(path, json=body, headers=keyed(headers, key) if key is not None else headers)


def stored_keys(app) -> list[tuple]:
    with app.container.database().engine.connect() as conn:
        return conn.execute(
            select(
                IdempotencyKey.user_id,
                IdempotencyKey.key,
                IdempotencyKey.status_code,
                IdempotencyKey.created_at,
                IdempotencyKey.expires_at,
            )
        ).all()


def expire_all_keys(app) -> None:
    with app.container.database().engine.begin() as conn:
        conn.execute(update(IdempotencyKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))


# -- the same request again: replayed, nothing moves -------------------------------------


def _money_request(client, people, route):
    """(path, body, headers, {user: expected balance after exactly one execution}) for each route."""
    a, b = people.alice.id, people.bob.id
    if route == "deposit":
        return "/wallet/deposit", {"user_id": a, "amount": 30}, people.admin.headers, {a: 130, b: 0}
    if route == "withdraw":
        return "/wallet/withdraw", {"user_id": a, "amount": 30}, people.alice.headers, {a: 70, b: 0}
    if route == "transfer":
        return "/transactions", {"from_user_id": a, "to_user_id": b, "amount": 30}, people.alice.headers, {a: 70, b: 30}
    tx = client.post(
        "/transactions", json={"from_user_id": a, "to_user_id": b, "amount": 30}, headers=people.alice.headers
    ).get_json()
    return f"/transactions/{tx['id']}/reverse", {"reason": "oops"}, people.admin.headers, {a: 100, b: 0}


@pytest.mark.parametrize("route", ["deposit", "withdraw", "transfer", "reverse"])
def test_same_key_same_body_replays_and_moves_money_once(app, client, people, route):
    deposit(client, people.admin.headers, people.alice.id, 100)
    path, body, headers, expected = _money_request(client, people, route)
    first = post(client, path, body, headers, key="key-1")
    assert first.status_code == 201, first.get_json()
    assert REPLAYED not in first.headers
    after_first = ledger_snapshot(app)

    for _ in range(2):
        again = post(client, path, body, headers, key="key-1")
        assert again.status_code == 201
        assert again.headers[REPLAYED] == "true"
        assert again.get_json() == first.get_json()
        assert again.get_data() == first.get_data()
    assert ledger_snapshot(app) == after_first
    assert {user: after_first["balances"][user] for user in expected} == expected
    for user_id, balance in expected.items():
        assert balance_of(client, people.admin.headers, user_id) == balance


def test_without_a_key_the_same_body_moves_money_each_time(client, people):
    for _ in range(2):
        deposit(client, people.admin.headers, people.alice.id, 10)
    assert balance_of(client, people.alice.headers, people.alice.id) == 20


def test_json_key_order_and_spacing_do_not_matter(app, client, people):
    a = people.alice.id
    first = client.post(
        "/wallet/deposit",
        data=f'{{"user_id": "{a}", "amount": 5, "description": "x"}}',
        content_type="application/json",
        headers=keyed(people.admin.headers, "k"),
    )
    assert first.status_code == 201
    snapshot = ledger_snapshot(app)
    again = client.post(
        "/wallet/deposit",
        data=f'{{"description":"x","amount":5,"user_id":"{a}"}}',
        content_type="application/json",
        headers=keyed(people.admin.headers, "k"),
    )
    assert again.status_code == 201 and again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()
    assert ledger_snapshot(app) == snapshot


def test_replay_is_answered_by_another_app_on_the_same_database(app, client, people, credit_app_factory):
    first = post(client, "/wallet/deposit", {"user_id": people.alice.id, "amount": 7}, people.admin.headers, key="k")
    snapshot = ledger_snapshot(app)
    other = credit_app_factory()
    again = post(
        other.test_client(), "/wallet/deposit", {"user_id": people.alice.id, "amount": 7}, people.admin.headers, key="k"
    )
    assert again.status_code == 201 and again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()
    assert ledger_snapshot(app) == snapshot


def test_replay_returns_the_stored_body_even_after_the_transaction_changed(client, people):
    first = post(client, "/wallet/deposit", {"user_id": people.alice.id, "amount": 7}, people.admin.headers, key="k")
    tx = first.get_json()
    assert client.post(f"/transactions/{tx['id']}/reverse", json={}, headers=people.admin.headers).status_code == 201
    again = post(client, "/wallet/deposit", {"user_id": people.alice.id, "amount": 7}, people.admin.headers, key="k")
    assert again.headers[REPLAYED] == "true"
    assert again.get_json() == tx and again.get_json()["reversed_by"] is None
    assert balance_of(client, people.admin.headers, people.alice.id) == 0


def test_replay_answers_as_before_even_where_the_request_would_now_be_refused(app, client, people):
    """The key is only looked up when recording it fails, so a replay that now trips a
    validation error must still find and return the stored answer."""
    deposit(client, people.admin.headers, people.alice.id, 50)
    body = {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 20}
    first = post(client, "/transactions", body, people.alice.headers, key="pay-bob")
    assert first.status_code == 201
    assert client.delete(f"/users/{people.bob.id}", headers=people.admin.headers).status_code == 204
    after_first = ledger_snapshot(app)

    fresh = post(client, "/transactions", body, people.alice.headers, key="another-key")
    assert_error(fresh, 422, "validation_error")  # the payee is inactive now
    again = post(client, "/transactions", body, people.alice.headers, key="pay-bob")
    assert again.status_code == 201 and again.headers[REPLAYED] == "true"
    assert again.get_data() == first.get_data()
    assert ledger_snapshot(app) == after_first
    assert [k for k in stored_keys(app) if k[1] == "another-key"] == []


# -- the same key for something else ----------------------------------------------------


@pytest.mark.parametrize("change", ["amount", "description", "recipient", "route"])
def test_same_key_different_request_is_422_and_writes_nothing(app, client, people, change):
    deposit(client, people.admin.headers, people.alice.id, 100)
    body = {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 10}
    assert post(client, "/transactions", body, people.alice.headers, key="k").status_code == 201
    snapshot = ledger_snapshot(app)
    path = "/transactions"
    if change == "amount":
        body = {**body, "amount": 11}
    elif change == "description":
        body = {**body, "description": "now with a description"}
    elif change == "recipient":
        body = {**body, "to_user_id": people.admin.id}
    else:
        path, body = "/wallet/withdraw", {"user_id": people.alice.id, "amount": 10}
    assert_error(post(client, path, body, people.alice.headers, key="k"), 422, "idempotency_key_reused")
    assert ledger_snapshot(app) == snapshot


def test_reversal_key_is_bound_to_the_transaction_it_reverses(app, client, people):
    one = deposit(client, people.admin.headers, people.alice.id, 10)
    two = deposit(client, people.admin.headers, people.alice.id, 20)
    assert post(client, f"/transactions/{one['id']}/reverse", {}, people.admin.headers, key="r").status_code == 201
    snapshot = ledger_snapshot(app)
    assert_error(
        post(client, f"/transactions/{two['id']}/reverse", {}, people.admin.headers, key="r"),
        422,
        "idempotency_key_reused",
    )
    assert ledger_snapshot(app) == snapshot


def test_keys_are_scoped_per_user(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    deposit(client, people.admin.headers, people.bob.id, 100)
    a, b = people.alice.id, people.bob.id
    from_alice = post(
        client, "/transactions", {"from_user_id": a, "to_user_id": b, "amount": 10}, people.alice.headers, key="shared"
    )
    from_bob = post(
        client, "/transactions", {"from_user_id": b, "to_user_id": a, "amount": 25}, people.bob.headers, key="shared"
    )
    by_admin = post(client, "/wallet/deposit", {"user_id": a, "amount": 1}, people.admin.headers, key="shared")
    for response in (from_alice, from_bob, by_admin):
        assert response.status_code == 201 and REPLAYED not in response.headers
    assert len({from_alice.get_json()["id"], from_bob.get_json()["id"], by_admin.get_json()["id"]}) == 3
    assert balance_of(client, people.admin.headers, a) == 100 - 10 + 25 + 1
    assert balance_of(client, people.admin.headers, b) == 100 + 10 - 25
    assert sorted((user, key) for user, key, *_ in stored_keys(app)) == sorted(
        [(a, "shared"), (b, "shared"), (people.admin.id, "shared")]
    )


# -- which outcomes are stored --------------------------------------------------------------


def test_insufficient_funds_is_stored_and_replayed_even_after_funding(app, client, people):
    body = {"user_id": people.alice.id, "amount": 50}
    first = post(client, "/wallet/withdraw", body, people.alice.headers, key="w")
    error = assert_error(first, 409, "insufficient_funds")
    assert error["details"] == {"balance": 0, "requested": 50}
    assert REPLAYED not in first.headers
    assert [row[2] for row in stored_keys(app)] == [409]

    deposit(client, people.admin.headers, people.alice.id, 100)
    snapshot = ledger_snapshot(app)
    again = post(client, "/wallet/withdraw", body, people.alice.headers, key="w")
    assert_error(again, 409, "insufficient_funds")
    assert again.headers[REPLAYED] == "true" and again.get_json() == first.get_json()
    assert ledger_snapshot(app) == snapshot
    assert balance_of(client, people.alice.headers, people.alice.id) == 100
    # A new key is a new request, which now succeeds.
    assert post(client, "/wallet/withdraw", body, people.alice.headers, key="w2").status_code == 201


def test_already_reversed_is_stored_and_replayed(app, client, people):
    dep = deposit(client, people.admin.headers, people.alice.id, 10)
    assert client.post(f"/transactions/{dep['id']}/reverse", json={}, headers=people.admin.headers).status_code == 201
    first = post(client, f"/transactions/{dep['id']}/reverse", {}, people.admin.headers, key="again")
    assert_error(first, 409, "already_reversed")
    again = post(client, f"/transactions/{dep['id']}/reverse", {}, people.admin.headers, key="again")
    assert again.status_code == 409 and again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (201, {"id": "t-1", "type": "transfer", "amount": 3, "description": "stored before kinds"}),
        (409, {"error": {"code": "insufficient_funds", "message": "low", "details": {"balance": 1, "requested": 3}}}),
    ],
)
def test_a_record_stored_by_an_earlier_version_replays_as_stored(app, client, people, status, body):
    """Records written before outcomes had kinds hold the HTTP status in status_code; they
    (and the ones written now, which store the same) replay with it and their body."""
    request = {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 3}
    parsed = {**request, "description": None}  # as the route hands it over
    fingerprint = IdempotencyRequest.of(people.alice.id, "old", "POST", "/transactions", parsed).fingerprint
    now = datetime.now(UTC)
    with app.container.database().engine.begin() as conn:
        conn.execute(
            insert(IdempotencyKey).values(
                user_id=people.alice.id,
                key="old",
                request_hash=fingerprint,
                status_code=status,
                response_body=json.dumps(body),
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    snapshot = ledger_snapshot(app)
    replay = post(client, "/transactions", request, people.alice.headers, key="old")
    assert (replay.status_code, replay.headers[REPLAYED], replay.get_json()) == (status, "true", body)
    assert ledger_snapshot(app) == snapshot


@pytest.mark.parametrize(
    "bad_body",
    [
        {"amount": "10"},
        {"amount": 10.0},
        {"amount": 0},
        {"amount": 10, "extra": True},
        {"amount": 10, "to_user_id": "{from}"},  # self-transfer: refused by the service, not the schema
    ],
)
def test_validation_rejections_are_not_stored(app, client, people, bad_body):
    deposit(client, people.admin.headers, people.alice.id, 100)
    snapshot = ledger_snapshot(app)
    valid = {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 10}
    body = {
        **valid,
        **{
            k: (v.format(**{"from": people.alice.id}) if isinstance(v, str) and "{" in v else v)
            for k, v in bad_body.items()
        },
    }
    assert_error(post(client, "/transactions", body, people.alice.headers, key="k"), 422, "validation_error")
    assert ledger_snapshot(app) == snapshot  # no idempotency record either

    ok = post(client, "/transactions", valid, people.alice.headers, key="k")
    assert ok.status_code == 201 and REPLAYED not in ok.headers
    assert balance_of(client, people.alice.headers, people.alice.id) == 90


def test_malformed_json_forbidden_and_not_found_are_not_stored(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    snapshot = ledger_snapshot(app)
    response = client.post(
        "/wallet/withdraw", data="{oops", content_type="application/json", headers=keyed(people.bob.headers, "k")
    )
    assert_error(response, 400, "bad_request")
    assert_error(
        post(client, "/wallet/withdraw", {"user_id": people.alice.id, "amount": 5}, people.bob.headers, "k"),
        403,
        "forbidden",
    )
    assert_error(
        post(client, "/wallet/deposit", {"user_id": "no-such-user", "amount": 5}, people.admin.headers, "k"),
        404,
        "not_found",
    )
    assert ledger_snapshot(app) == snapshot
    deposit(client, people.admin.headers, people.bob.id, 5)
    assert (
        post(client, "/wallet/withdraw", {"user_id": people.bob.id, "amount": 5}, people.bob.headers, "k").status_code
        == 201
    )
    assert (
        post(client, "/wallet/deposit", {"user_id": people.bob.id, "amount": 5}, people.admin.headers, "k").status_code
        == 201
    )


# -- the key itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "k" * 256, "k" * 1000])
def test_key_length_outside_1_to_255_is_422(app, client, people, key):
    deposit(client, people.admin.headers, people.alice.id, 100)
    snapshot = ledger_snapshot(app)
    for path, body, headers in [
        ("/wallet/deposit", {"user_id": people.alice.id, "amount": 5}, people.admin.headers),
        ("/wallet/withdraw", {"user_id": people.alice.id, "amount": 5}, people.alice.headers),
        (
            "/transactions",
            {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 5},
            people.alice.headers,
        ),
    ]:
        error = assert_error(post(client, path, body, headers, key=key), 422, "validation_error")
        assert "Idempotency-Key" in error["details"], error
    assert ledger_snapshot(app) == snapshot


def test_keys_of_1_to_255_characters_work(client, people):
    keys = ["k" * 255, "x", "order:42/retry #1", "ключ-ü".encode().decode("latin-1")]  # UTF-8 as sent
    for n, key in enumerate(keys, 1):
        body = {"user_id": people.alice.id, "amount": n}
        first = post(client, "/wallet/deposit", body, people.admin.headers, key=key)
        assert first.status_code == 201 and REPLAYED not in first.headers
        again = post(client, "/wallet/deposit", body, people.admin.headers, key=key)
        assert again.headers[REPLAYED] == "true" and again.get_json() == first.get_json()
    assert balance_of(client, people.admin.headers, people.alice.id) == 1 + 2 + 3 + 4


# -- lifetime -----------------------------------------------------------------------------------


def test_a_key_lives_for_24_hours_by_default(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 5)
    post(client, "/wallet/withdraw", {"user_id": people.alice.id, "amount": 5}, people.alice.headers, key="k")
    ((_, _, _, created_at, expires_at),) = stored_keys(app)
    assert expires_at - created_at == timedelta(hours=24)


def test_an_expired_key_is_processed_again(app, client, people):
    body = {"user_id": people.alice.id, "amount": 5}
    first = post(client, "/wallet/deposit", body, people.admin.headers, key="k")
    expire_all_keys(app)
    again = post(client, "/wallet/deposit", body, people.admin.headers, key="k")
    assert again.status_code == 201 and REPLAYED not in again.headers
    assert again.get_json()["id"] != first.get_json()["id"]
    assert balance_of(client, people.admin.headers, people.alice.id) == 10
    # ... and stored afresh, so the next identical request is a replay of the second one.
    ((*_, expires_at),) = stored_keys(app)
    assert expires_at > datetime.now(UTC) + timedelta(hours=23)
    third = post(client, "/wallet/deposit", body, people.admin.headers, key="k")
    assert third.headers[REPLAYED] == "true" and third.get_json() == again.get_json()


def test_an_expired_key_may_carry_a_different_request(client, people, app):
    post(client, "/wallet/deposit", {"user_id": people.alice.id, "amount": 5}, people.admin.headers, key="k")
    expire_all_keys(app)
    response = post(client, "/wallet/deposit", {"user_id": people.bob.id, "amount": 9}, people.admin.headers, key="k")
    assert response.status_code == 201 and REPLAYED not in response.headers
    assert balance_of(client, people.admin.headers, people.bob.id) == 9


def test_an_expired_key_whose_new_outcome_is_refused_stores_the_refusal(app, client, people):
    # Regression: the expired record's removal was undone with the refused operation, and
    # storing the 409 then collided with it -> idempotency_conflict on every retry.
    body = {"user_id": people.alice.id, "amount": 5}
    assert_error(post(client, "/wallet/withdraw", body, people.alice.headers, key="k"), 409, "insufficient_funds")
    expire_all_keys(app)
    snapshot = ledger_snapshot(app)
    response = post(client, "/wallet/withdraw", body, people.alice.headers, key="k")
    assert_error(response, 409, "insufficient_funds")
    assert REPLAYED not in response.headers
    assert ledger_snapshot(app)["balances"] == snapshot["balances"]
    ((*_, status, _, expires_at),) = stored_keys(app)
    assert status == 409 and expires_at > datetime.now(UTC)
    replay = post(client, "/wallet/withdraw", body, people.alice.headers, key="k")
    assert replay.status_code == 409 and replay.headers[REPLAYED] == "true"


@pytest.mark.credit_settings(idempotency_ttl_seconds=0)
def test_ttl_comes_from_settings(client, people):
    admin = people.admin.headers
    body = {"user_id": people.alice.id, "amount": 5}
    # With a lifetime of zero every key has expired by the time it is seen again.
    for _ in range(2):
        response = post(client, "/wallet/deposit", body, admin, key="k")
        assert response.status_code == 201 and REPLAYED not in response.headers
    assert balance_of(client, admin, people.alice.id) == 10


# -- purge ---------------------------------------------------------------------------------------


def test_purge_command_removes_expired_keys_only(app, client, people, credit_cli):
    deposit(client, people.admin.headers, people.alice.id, 100)
    post(client, "/wallet/withdraw", {"user_id": people.alice.id, "amount": 1}, people.alice.headers, key="old")
    expire_all_keys(app)
    post(client, "/wallet/withdraw", {"user_id": people.alice.id, "amount": 1}, people.alice.headers, key="live")

    result = credit_cli("purge")
    assert result.exit_code == 0, result.output
    assert "purged 1 idempotency key(s)" in result.output
    assert [key for _, key, *_ in stored_keys(app)] == ["live"]
    # The live key still replays; the purged one is simply a new request.
    live = post(client, "/wallet/withdraw", {"user_id": people.alice.id, "amount": 1}, people.alice.headers, key="live")
    assert live.headers[REPLAYED] == "true"
    old = post(client, "/wallet/withdraw", {"user_id": people.alice.id, "amount": 1}, people.alice.headers, key="old")
    assert old.status_code == 201 and REPLAYED not in old.headers
    assert balance_of(client, people.alice.headers, people.alice.id) == 97


def test_purge_expired_store_method(app, client, people):
    for key in ("a", "b"):
        post(client, "/wallet/deposit", {"user_id": people.alice.id, "amount": 1}, people.admin.headers, key=key)
    database = app.container.database()
    with database.unit_of_work() as uow:
        assert IdempotencyStore.purge_expired(uow.session) == 0
        uow.commit()
    expire_all_keys(app)
    with database.unit_of_work() as uow:
        assert IdempotencyStore.purge_expired(uow.session) == 2
        uow.commit()
    assert stored_keys(app) == []
