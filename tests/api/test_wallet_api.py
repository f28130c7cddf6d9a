"""Wallets through the HTTP API: balances, deposits (admin), withdrawals (owner or admin).

Every refused money request is also checked against the database: no transaction, no
ledger entry, no idempotency record and no balance changed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.infrastructure.tables import ISSUANCE_ACCOUNT, REDEMPTION_ACCOUNT, Account, LedgerEntry
from app.testing import FakeCache, assert_error, ledger_snapshot
from tests.helpers import INVALID_AMOUNTS, MISSING, balance_of, deposit, with_field

TRANSACTION_FIELDS = {
    "id",
    "type",
    "amount",
    "from_user_id",
    "to_user_id",
    "description",
    "created_at",
    "reverses",
    "reversed_by",
}


def parse_utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0, value
    return parsed


# -- balance ----------------------------------------------------------------------------


def test_new_user_has_a_wallet_at_zero_created_with_the_user(app, client, people):
    # The user.created event made the wallet in the registration's transaction, before any read.
    with app.container.database().engine.connect() as conn:
        wallet = conn.execute(select(Account.kind, Account.balance).where(Account.user_id == people.alice.id)).one()
    assert tuple(wallet) == ("user", 0)

    response = client.get(f"/wallet/balance/{people.alice.id}", headers=people.alice.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"user_id", "balance", "updated_at"}
    assert body["user_id"] == people.alice.id and body["balance"] == 0
    parse_utc(body["updated_at"])


def test_admin_reads_any_balance(client, people):
    deposit(client, people.admin.headers, people.bob.id, 70)
    response = client.get(f"/wallet/balance/{people.bob.id}", headers=people.admin.headers)
    assert response.status_code == 200
    assert response.get_json()["balance"] == 70


def test_the_query_is_read_on_every_request_around_the_no_query_fast_path(client, people):
    """A balance read without a query string reuses its loaded arguments (app.http.blueprint);
    a query string, bad or good, is still read every time, before and after."""
    deposit(client, people.admin.headers, people.alice.id, 30)
    path = f"/wallet/balance/{people.alice.id}"
    for _ in range(2):
        assert client.get(path, headers=people.alice.headers).get_json()["balance"] == 30
        bad = client.get(path + "?as_of=yesterday", headers=people.alice.headers)
        assert_error(bad, 422, "validation_error")
        unknown = client.get(path + "?limt=5", headers=people.alice.headers)
        assert_error(unknown, 422, "validation_error")
        before = client.get(path + "?as_of=2000-01-01T00:00:00Z", headers=people.alice.headers)
        assert before.status_code == 200 and before.get_json()["balance"] == 0


def test_user_cannot_read_another_users_balance(client, people):
    deposit(client, people.admin.headers, people.bob.id, 70)
    error = assert_error(client.get(f"/wallet/balance/{people.bob.id}", headers=people.alice.headers), 403, "forbidden")
    assert "70" not in str(error)


def test_balance_of_unknown_user_is_404_for_admin(client, people):
    assert_error(client.get("/wallet/balance/no-such-user", headers=people.admin.headers), 404, "not_found")


# -- deposit ----------------------------------------------------------------------------


def test_deposit_returns_the_transaction_and_credits_the_wallet(app, client, people):
    before = datetime.now(UTC)
    response = client.post(
        "/wallet/deposit",
        json={"user_id": people.alice.id, "amount": 250, "description": "welcome bonus"},
        headers=people.admin.headers,
    )
    assert response.status_code == 201
    tx = response.get_json()
    assert set(tx) == TRANSACTION_FIELDS
    assert tx["type"] == "deposit" and tx["amount"] == 250
    assert tx["from_user_id"] is None and tx["to_user_id"] == people.alice.id
    assert tx["description"] == "welcome bonus"
    assert tx["reverses"] is None and tx["reversed_by"] is None
    assert isinstance(tx["id"], str) and tx["id"]
    assert before.replace(microsecond=0) <= parse_utc(tx["created_at"]) <= datetime.now(UTC)
    assert balance_of(client, people.alice.headers, people.alice.id) == 250

    # Double entry: the issuance account pays for it, and the legs sum to zero.
    with app.container.database().engine.connect() as conn:
        legs = conn.execute(
            select(LedgerEntry.account_id, LedgerEntry.amount).where(LedgerEntry.transaction_id == tx["id"])
        ).all()
        wallet = conn.scalar(select(Account.id).where(Account.user_id == people.alice.id))
    assert sorted(legs, key=lambda leg: leg[1]) == [(ISSUANCE_ACCOUNT, -250), (wallet, 250)]


def test_deposit_without_description_has_null_description(client, people):
    tx = deposit(client, people.admin.headers, people.alice.id, 5)
    assert tx["description"] is None


def test_deposit_accepts_the_maximum_amount_and_500_char_description(client, people):
    tx = deposit(client, people.admin.headers, people.alice.id, 1_000_000_000_000, description="d" * 500)
    assert tx["amount"] == 1_000_000_000_000 and tx["description"] == "d" * 500
    assert balance_of(client, people.admin.headers, people.alice.id) == 1_000_000_000_000


def test_user_cannot_deposit_even_into_own_wallet(app, client, people):
    before = ledger_snapshot(app)
    for target in (people.alice.id, people.bob.id):
        assert_error(
            client.post("/wallet/deposit", json={"user_id": target, "amount": 10}, headers=people.alice.headers),
            403,
            "forbidden",
        )
    assert ledger_snapshot(app) == before


def test_deposit_to_unknown_user_is_404_and_writes_nothing(app, client, people):
    before = ledger_snapshot(app)
    assert_error(
        client.post("/wallet/deposit", json={"user_id": "no-such-user", "amount": 10}, headers=people.admin.headers),
        404,
        "not_found",
    )
    assert ledger_snapshot(app) == before


# -- withdraw ---------------------------------------------------------------------------


def test_owner_withdraws_from_own_wallet(client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    response = client.post(
        "/wallet/withdraw",
        json={"user_id": people.alice.id, "amount": 30, "description": "cash out"},
        headers=people.alice.headers,
    )
    assert response.status_code == 201
    tx = response.get_json()
    assert set(tx) == TRANSACTION_FIELDS
    assert tx["type"] == "withdrawal" and tx["amount"] == 30
    assert tx["from_user_id"] == people.alice.id and tx["to_user_id"] is None
    assert tx["description"] == "cash out" and tx["reverses"] is None and tx["reversed_by"] is None
    assert balance_of(client, people.alice.headers, people.alice.id) == 70


def test_admin_withdraws_from_a_users_wallet_into_redemption(app, client, people):
    deposit(client, people.admin.headers, people.bob.id, 100)
    response = client.post(
        "/wallet/withdraw", json={"user_id": people.bob.id, "amount": 100}, headers=people.admin.headers
    )
    assert response.status_code == 201
    tx = response.get_json()
    assert tx["type"] == "withdrawal" and tx["from_user_id"] == people.bob.id
    assert balance_of(client, people.bob.headers, people.bob.id) == 0
    with app.container.database().engine.connect() as conn:
        legs = dict(
            conn.execute(
                select(LedgerEntry.account_id, LedgerEntry.amount).where(LedgerEntry.transaction_id == tx["id"])
            ).all()
        )
    assert legs[REDEMPTION_ACCOUNT] == 100 and sum(legs.values()) == 0


def test_withdrawing_exactly_the_balance_leaves_zero(client, people):
    deposit(client, people.admin.headers, people.alice.id, 42)
    response = client.post(
        "/wallet/withdraw", json={"user_id": people.alice.id, "amount": 42}, headers=people.alice.headers
    )
    assert response.status_code == 201
    assert balance_of(client, people.alice.headers, people.alice.id) == 0


def test_withdraw_more_than_balance_is_409_with_details_and_writes_nothing(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    before = ledger_snapshot(app)
    error = assert_error(
        client.post("/wallet/withdraw", json={"user_id": people.alice.id, "amount": 101}, headers=people.alice.headers),
        409,
        "insufficient_funds",
    )
    assert error["details"] == {"balance": 100, "requested": 101}
    assert ledger_snapshot(app) == before
    assert balance_of(client, people.alice.headers, people.alice.id) == 100


def test_withdraw_from_empty_wallet_is_409(app, client, people):
    before = ledger_snapshot(app)
    error = assert_error(
        client.post("/wallet/withdraw", json={"user_id": people.bob.id, "amount": 1}, headers=people.admin.headers),
        409,
        "insufficient_funds",
    )
    assert error["details"] == {"balance": 0, "requested": 1}
    assert ledger_snapshot(app) == before


def test_user_cannot_withdraw_from_another_users_wallet(app, client, people):
    deposit(client, people.admin.headers, people.bob.id, 100)
    before = ledger_snapshot(app)
    assert_error(
        client.post("/wallet/withdraw", json={"user_id": people.bob.id, "amount": 10}, headers=people.alice.headers),
        403,
        "forbidden",
    )
    assert ledger_snapshot(app) == before


def test_withdraw_from_unknown_user_is_404_for_admin(app, client, people):
    before = ledger_snapshot(app)
    assert_error(
        client.post("/wallet/withdraw", json={"user_id": "no-such-user", "amount": 10}, headers=people.admin.headers),
        404,
        "not_found",
    )
    assert ledger_snapshot(app) == before


# -- validation of every money field ---------------------------------------------------
# Each case is sent to both wallet routes: deposit as the admin, withdraw as the (funded)
# owner, so the body is the only thing that can be at fault. Transfer-specific fields are
# in test_transactions_api.py; invalid amounts are checked here on all three money routes.

ROUTES = ["/wallet/deposit", "/wallet/withdraw"]


def _valid_body(people, path="/wallet/deposit") -> dict:
    if path == "/transactions":
        return {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 10, "description": "ok"}
    return {"user_id": people.alice.id, "amount": 10, "description": "ok"}


def _actor(people, path):
    return people.admin.headers if path == "/wallet/deposit" else people.alice.headers  # withdraw/transfer: the owner


@pytest.fixture
def funded(people):
    people.fund(people.alice, 1000)
    return people


def test_the_valid_bodies_used_below_are_accepted(client, funded):
    for path in ROUTES + ["/transactions"]:
        response = client.post(path, json=_valid_body(funded, path), headers=_actor(funded, path))
        assert response.status_code == 201, (path, response.get_json())


@pytest.mark.parametrize("value", [value for _, value in INVALID_AMOUNTS], ids=[name for name, _ in INVALID_AMOUNTS])
def test_invalid_amount_is_422_on_every_money_route_and_writes_nothing(app, client, funded, value):
    before = ledger_snapshot(app)
    for path in ROUTES + ["/transactions"]:
        body = with_field(_valid_body(funded, path), "amount", value)
        error = assert_error(client.post(path, json=body, headers=_actor(funded, path)), 422, "validation_error")
        assert set(error["details"]) == {"amount"}, (path, error)
    assert ledger_snapshot(app) == before


BAD_FIELDS = [
    ("user_id", 123),
    ("user_id", None),
    ("user_id", ""),
    ("user_id", ["x"]),
    ("user_id", MISSING),
    ("description", "x" * 501),
    ("description", 5),
    ("description", "nul\x00byte"),
    ("unexpected", "field"),
]


@pytest.mark.parametrize(
    "field,value", BAD_FIELDS, ids=[f"{f}={'missing' if v is MISSING else str(v)[:12]}" for f, v in BAD_FIELDS]
)
def test_invalid_field_is_422_naming_it_and_writes_nothing(app, client, funded, field, value):
    before = ledger_snapshot(app)
    for path in ROUTES:
        body = with_field(_valid_body(funded), field, value)
        error = assert_error(client.post(path, json=body, headers=_actor(funded, path)), 422, "validation_error")
        assert field in error["details"], (path, error)
    assert ledger_snapshot(app) == before


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'[{"user_id": "x", "amount": 1}]', b'"text"', b"10"])
def test_body_that_is_not_a_json_object_is_400(app, client, funded, raw):
    before = ledger_snapshot(app)
    for path in ROUTES:
        response = client.post(path, data=raw, content_type="application/json", headers=_actor(funded, path))
        assert_error(response, 400, "bad_request")
    assert ledger_snapshot(app) == before


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("get", "/wallet/balance/{id}", None),
        ("post", "/wallet/deposit", {"user_id": "{id}", "amount": 10}),
        ("post", "/wallet/withdraw", {"user_id": "{id}", "amount": 10}),
        # No token and a bad body: still 401 (authentication comes before validation).
        ("post", "/wallet/deposit", {"amount": "bad"}),
        ("post", "/wallet/withdraw", {}),
    ],
)
def test_wallet_routes_need_a_valid_token(app, client, people, method, path, body):
    deposit(client, people.admin.headers, people.alice.id, 100)
    before = ledger_snapshot(app)
    if body is not None:
        body = {k: (v.format(id=people.alice.id) if isinstance(v, str) else v) for k, v in body.items()}
    for auth in (
        None,
        "Bearer not-a-token",
        "Basic YWxpY2U6cHc=",
        "Bearer ",
        people.alice.headers["Authorization"] + "x",
    ):
        headers = {"Authorization": auth} if auth else {}
        response = getattr(client, method)(path.format(id=people.alice.id), json=body, headers=headers)
        assert_error(response, 401, "unauthorized")
    assert ledger_snapshot(app) == before


def test_token_of_a_deactivated_user_is_refused(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    assert client.delete(f"/users/{people.alice.id}", headers=people.admin.headers).status_code == 204
    before = ledger_snapshot(app)
    assert_error(client.get(f"/wallet/balance/{people.alice.id}", headers=people.alice.headers), 401, "unauthorized")
    assert_error(
        client.post("/wallet/withdraw", json={"user_id": people.alice.id, "amount": 10}, headers=people.alice.headers),
        401,
        "unauthorized",
    )
    assert ledger_snapshot(app) == before
    # Its wallet is kept.
    assert balance_of(client, people.admin.headers, people.alice.id) == 100


# -- the balance cache ------------------------------------------------------------------


def test_balance_read_reflects_a_deposit_immediately(app, client, people):
    cache = app.container.balance_cache()
    assert balance_of(client, people.alice.headers, people.alice.id) == 0  # warms the cache
    assert cache.get(people.alice.id).balance == 0
    deposit(client, people.admin.headers, people.alice.id, 100)
    assert cache.get(people.alice.id).balance == 100  # updated on commit, not on expiry
    assert balance_of(client, people.alice.headers, people.alice.id) == 100
    client.post("/wallet/withdraw", json={"user_id": people.alice.id, "amount": 30}, headers=people.alice.headers)
    assert balance_of(client, people.alice.headers, people.alice.id) == 70


@pytest.mark.parametrize("key", [None, "failed-transfer"])
def test_failed_transfer_leaves_no_wrong_balance_in_the_cache(app, client, people, key):
    # The credited wallet's row is updated first when its id sorts first; the debit then fails.
    # Its queued cache update must be discarded with the rollback (with or without a stored 409).
    sender, receiver = sorted([people.alice, people.bob], key=lambda p: p.id, reverse=True)
    assert receiver.id < sender.id
    deposit(client, people.admin.headers, sender.id, 100)
    for person in (sender, receiver):
        balance_of(client, person.headers, person.id)  # both cached
    headers = {**sender.headers, **({"Idempotency-Key": key} if key else {})}
    response = client.post(
        "/transactions",
        json={"from_user_id": sender.id, "to_user_id": receiver.id, "amount": 300},
        headers=headers,
    )
    assert_error(response, 409, "insufficient_funds")
    assert balance_of(client, receiver.headers, receiver.id) == 0
    assert balance_of(client, sender.headers, sender.id) == 100
    cached = app.container.balance_cache().get(receiver.id)
    assert cached is None or cached.balance == 0


@pytest.mark.credit_override(cache=FakeCache(down=True))
def test_every_money_route_works_from_the_database_when_the_cache_is_down(app, client, people):
    assert isinstance(app.container.cache(), FakeCache)
    health = client.get("/health")
    assert health.status_code == 200 and health.get_json()["status"] == "degraded"

    admin, alice_h, bob_h = people.admin.headers, people.alice.headers, people.bob.headers
    a, b = people.alice.id, people.bob.id
    assert balance_of(client, alice_h, a) == 0
    deposit(client, admin, a, 100)
    assert balance_of(client, alice_h, a) == 100
    assert client.post("/wallet/withdraw", json={"user_id": a, "amount": 10}, headers=alice_h).status_code == 201
    tr = client.post(
        "/transactions",
        json={"from_user_id": a, "to_user_id": b, "amount": 40},
        headers={**alice_h, "Idempotency-Key": "t"},
    )
    assert tr.status_code == 201
    replay = client.post(
        "/transactions",
        json={"from_user_id": a, "to_user_id": b, "amount": 40},
        headers={**alice_h, "Idempotency-Key": "t"},
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (balance_of(client, alice_h, a), balance_of(client, bob_h, b)) == (50, 40)
    assert_error(
        client.post("/transactions", json={"from_user_id": b, "to_user_id": a, "amount": 41}, headers=bob_h),
        409,
        "insufficient_funds",
    )
    assert client.post(f"/transactions/{tr.get_json()['id']}/reverse", json={}, headers=admin).status_code == 201
    assert (balance_of(client, admin, a), balance_of(client, admin, b)) == (90, 0)
    assert len(client.get("/transactions", headers=alice_h).get_json()["items"]) == 4
    # Logout still revokes the token without a cache.
    assert client.post("/auth/logout", headers=bob_h).status_code == 204
    assert_error(client.get(f"/wallet/balance/{b}", headers=bob_h), 401, "unauthorized")
