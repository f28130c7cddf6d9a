"""Transfers, reading transactions, history pages and reversals through the HTTP API.

Every refused money request is also checked against the database: no transaction, no
ledger entry, no idempotency record and no balance changed.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from app.testing import assert_error, ledger_snapshot
from tests.helpers import MISSING, balance_of, cursor_of, deposit, with_field

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


@pytest.fixture
def people(people):
    """The plugin's admin, alice and bob, and carol."""
    people.add("carol")
    return people


def transfer(client, headers, from_id, to_id, amount, **fields):
    return client.post(
        "/transactions",
        json={"from_user_id": from_id, "to_user_id": to_id, "amount": amount, **fields},
        headers=headers,
    )


def reverse(client, headers, tx_id, **body):
    return client.post(f"/transactions/{tx_id}/reverse", json=body, headers=headers)


def withdraw(client, headers, user_id, amount):
    response = client.post("/wallet/withdraw", json={"user_id": user_id, "amount": amount}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def created(response) -> dict:
    assert response.status_code == 201, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert set(body) == TRANSACTION_FIELDS
    return body


def balances(client, people, *names) -> list[int]:
    return [balance_of(client, people.admin.headers, people[name].id) for name in names]


# -- transfer ---------------------------------------------------------------------------


def test_owner_transfers_to_another_user(client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    tx = created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 40, description="lunch"))
    assert tx["type"] == "transfer" and tx["amount"] == 40
    assert tx["from_user_id"] == people.alice.id and tx["to_user_id"] == people.bob.id
    assert tx["description"] == "lunch" and tx["reverses"] is None and tx["reversed_by"] is None
    datetime.fromisoformat(tx["created_at"])
    assert balance_of(client, people.alice.headers, people.alice.id) == 60
    assert balance_of(client, people.bob.headers, people.bob.id) == 40


def test_admin_transfers_between_two_users(client, people):
    deposit(client, people.admin.headers, people.bob.id, 10)
    tx = created(transfer(client, people.admin.headers, people.bob.id, people.carol.id, 10))
    assert tx["from_user_id"] == people.bob.id and tx["description"] is None
    assert balances(client, people, "bob", "carol") == [0, 10]


def test_transfer_of_the_whole_balance_and_the_maximum_amount(client, people):
    deposit(client, people.admin.headers, people.alice.id, 1_000_000_000_000)
    created(
        transfer(client, people.alice.headers, people.alice.id, people.bob.id, 1_000_000_000_000, description="z" * 500)
    )
    assert balances(client, people, "alice", "bob") == [0, 1_000_000_000_000]


def test_transfer_more_than_balance_is_409_and_writes_nothing(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    before = ledger_snapshot(app)
    error = assert_error(
        transfer(client, people.alice.headers, people.alice.id, people.bob.id, 300), 409, "insufficient_funds"
    )
    assert error["details"] == {"balance": 100, "requested": 300}
    assert ledger_snapshot(app) == before
    assert balances(client, people, "alice", "bob") == [100, 0]


def test_transfer_to_self_is_422_and_writes_nothing(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    before = ledger_snapshot(app)
    for headers in (people.alice.headers, people.admin.headers):
        error = assert_error(transfer(client, headers, people.alice.id, people.alice.id, 10), 422, "validation_error")
        assert "to_user_id" in error["details"]
    assert ledger_snapshot(app) == before


def test_transfer_to_unknown_recipient_is_404_and_writes_nothing(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    before = ledger_snapshot(app)
    assert_error(transfer(client, people.alice.headers, people.alice.id, "no-such-user", 10), 404, "not_found")
    assert ledger_snapshot(app) == before


def test_transfer_from_unknown_user_by_admin_is_404(app, client, people):
    before = ledger_snapshot(app)
    assert_error(transfer(client, people.admin.headers, "no-such-user", people.bob.id, 10), 404, "not_found")
    assert ledger_snapshot(app) == before


def test_transfer_to_deactivated_recipient_is_422_and_writes_nothing(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    assert client.delete(f"/users/{people.bob.id}", headers=people.admin.headers).status_code == 204
    before = ledger_snapshot(app)
    error = assert_error(
        transfer(client, people.alice.headers, people.alice.id, people.bob.id, 10), 422, "validation_error"
    )
    assert "to_user_id" in error["details"]
    assert ledger_snapshot(app) == before


def test_user_cannot_transfer_from_another_users_wallet(app, client, people):
    deposit(client, people.admin.headers, people.bob.id, 100)
    before = ledger_snapshot(app)
    for to in (people.alice.id, people.carol.id):
        assert_error(transfer(client, people.alice.headers, people.bob.id, to, 10), 403, "forbidden")
    assert ledger_snapshot(app) == before
    assert balance_of(client, people.bob.headers, people.bob.id) == 100


# -- transfer validation ----------------------------------------------------------------


@pytest.fixture
def funded(people):
    people.fund(people.alice, 1000)
    return people


def _valid(people) -> dict:
    return {"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 10, "description": "ok"}


def test_the_valid_transfer_body_used_below_is_accepted(client, funded):
    created(client.post("/transactions", json=_valid(funded), headers=funded.alice.headers))


# Invalid amounts (floats, strings, booleans, null, zero, negatives, too large, missing) are
# checked on transfers too, in test_wallet_api.py::test_invalid_amount_is_422_on_every_money_route...

BAD_FIELDS = [
    ("from_user_id", 123),
    ("to_user_id", 123),
    ("to_user_id", None),
    ("to_user_id", MISSING),
    ("from_user_id", MISSING),
    ("to_user_id", ""),
    ("to_user_id", "nul\x00"),
    ("description", "x" * 501),
    ("description", ["a"]),
    ("unexpected", 1),
]


@pytest.mark.parametrize(
    "field,value", BAD_FIELDS, ids=[f"{f}={'missing' if v is MISSING else str(v)[:12]}" for f, v in BAD_FIELDS]
)
def test_transfer_with_invalid_field_is_422_naming_it(app, client, funded, field, value):
    before = ledger_snapshot(app)
    body = with_field(_valid(funded), field, value)
    error = assert_error(client.post("/transactions", json=body, headers=funded.admin.headers), 422, "validation_error")
    assert field in error["details"], error
    assert ledger_snapshot(app) == before


def test_transfer_or_reverse_body_that_is_not_a_json_object_is_400(app, client, funded):
    tx = deposit(client, funded.admin.headers, funded.bob.id, 5)
    before = ledger_snapshot(app)
    for raw in (b"{not json", b"[1, 2]", b"null", b'"x"', b"\xff"):
        for path in ("/transactions", f"/transactions/{tx['id']}/reverse"):
            response = client.post(path, data=raw, content_type="application/json", headers=funded.admin.headers)
            assert_error(response, 400, "bad_request")
    assert ledger_snapshot(app) == before


# -- reading one transaction -------------------------------------------------------------


def test_both_parties_and_admin_read_a_transfer_others_get_404(client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    tx = created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 25))
    for headers in (people.alice.headers, people.bob.headers, people.admin.headers):
        response = client.get(f"/transactions/{tx['id']}", headers=headers)
        assert response.status_code == 200
        assert response.get_json() == tx
    # A third user gets exactly what an unknown id gets: no data.
    stranger = client.get(f"/transactions/{tx['id']}", headers=people.carol.headers)
    missing = client.get(f"/transactions/{'0' * 36}", headers=people.carol.headers)
    assert_error(stranger, 404, "not_found")
    assert_error(missing, 404, "not_found")
    assert stranger.get_json() == missing.get_json()
    assert people.alice.id not in stranger.get_data(as_text=True)


def test_deposit_is_visible_to_its_recipient_only(client, people):
    tx = deposit(client, people.admin.headers, people.alice.id, 5)
    assert client.get(f"/transactions/{tx['id']}", headers=people.alice.headers).get_json() == tx
    assert_error(client.get(f"/transactions/{tx['id']}", headers=people.bob.headers), 404, "not_found")


def test_unknown_transaction_is_404(client, people):
    for tx_id in ("no-such-id", "0" * 36, "x" * 300, "%00", "a%00b"):
        assert_error(client.get(f"/transactions/{tx_id}", headers=people.admin.headers), 404, "not_found")


# -- history ----------------------------------------------------------------------------


def _seven_for_alice(client, people) -> list[dict]:
    """Seven transactions touching alice (and one that does not), in creation order."""
    txs = [
        deposit(client, people.admin.headers, people.alice.id, 100),
        deposit(client, people.admin.headers, people.alice.id, 50),
    ]
    txs.append(created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 30)))
    deposit(client, people.admin.headers, people.carol.id, 9)  # not alice's
    txs.append(created(transfer(client, people.bob.headers, people.bob.id, people.alice.id, 10)))
    txs.append(withdraw(client, people.alice.headers, people.alice.id, 20))
    txs.append(deposit(client, people.admin.headers, people.alice.id, 1))
    txs.append(created(transfer(client, people.alice.headers, people.alice.id, people.carol.id, 7)))
    return txs


def test_history_is_newest_first_and_only_the_callers(client, people):
    txs = _seven_for_alice(client, people)
    response = client.get("/transactions", headers=people.alice.headers)
    assert response.status_code == 200
    page = response.get_json()
    assert set(page) == {"items", "next_cursor"} and page["next_cursor"] is None
    assert [t["id"] for t in page["items"]] == [t["id"] for t in reversed(txs)]
    assert page["items"] == list(reversed(txs))
    stamps = [datetime.fromisoformat(t["created_at"]) for t in page["items"]]
    assert stamps == sorted(stamps, reverse=True)


def test_history_type_filter(client, people):
    txs = _seven_for_alice(client, people)
    for kind in ("deposit", "transfer", "withdrawal", "reversal"):
        response = client.get(f"/transactions?type={kind}", headers=people.alice.headers)
        assert response.status_code == 200
        expected = [t["id"] for t in reversed(txs) if t["type"] == kind]
        assert [t["id"] for t in response.get_json()["items"]] == expected, kind


def test_admin_reads_any_users_history_user_cannot(app, client, people):
    txs = _seven_for_alice(client, people)
    response = client.get(f"/transactions?user_id={people.alice.id}", headers=people.admin.headers)
    assert response.status_code == 200
    assert [t["id"] for t in response.get_json()["items"]] == [t["id"] for t in reversed(txs)]
    # Own id explicitly is fine for a user; anyone else's is forbidden, with no data.
    assert client.get(f"/transactions?user_id={people.bob.id}", headers=people.bob.headers).status_code == 200
    for other in (people.alice.id, people.carol.id, "no-such-user"):
        error = assert_error(client.get(f"/transactions?user_id={other}", headers=people.bob.headers), 403, "forbidden")
        assert txs[0]["id"] not in str(error)
    # The admin's own history holds nothing: deposits are not the admin's money.
    assert client.get("/transactions", headers=people.admin.headers).get_json() == {"items": [], "next_cursor": None}
    assert_error(client.get("/transactions?user_id=no-such-user", headers=people.admin.headers), 404, "not_found")


def _pages(client, headers, query: str) -> list[dict]:
    pages, cursor = [], None
    while True:
        url = f"/transactions?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_json()
        pages.append(response.get_json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not terminate"


def test_cursor_pagination_sees_every_transaction_once_in_order(client, people):
    txs = _seven_for_alice(client, people)
    pages = _pages(client, people.alice.headers, "limit=2")
    assert [len(p["items"]) for p in pages] == [2, 2, 2, 1]
    assert all(isinstance(p["next_cursor"], str) for p in pages[:-1]) and pages[-1]["next_cursor"] is None
    seen = [t["id"] for p in pages for t in p["items"]]
    assert seen == [t["id"] for t in reversed(txs)]
    assert len(set(seen)) == 7

    # Pagination by an admin for that user, with a type filter, and a page size that divides evenly.
    deposits = [t["id"] for t in reversed(txs) if t["type"] == "deposit"]
    pages = _pages(client, people.admin.headers, f"user_id={people.alice.id}&type=deposit&limit=1")
    assert [t["id"] for p in pages for t in p["items"]] == deposits
    assert [len(p["items"]) for p in pages] == [1, 1, 1]


def test_a_page_does_not_shift_when_newer_transactions_arrive(client, people):
    txs = _seven_for_alice(client, people)
    first = client.get("/transactions?limit=3", headers=people.alice.headers).get_json()
    deposit(client, people.admin.headers, people.alice.id, 2)  # newer than everything on the first page
    rest = _pages(client, people.alice.headers, f"limit=50&cursor={first['next_cursor']}")
    seen = [t["id"] for t in first["items"]] + [t["id"] for p in rest for t in p["items"]]
    assert seen == [t["id"] for t in reversed(txs)]


BAD_QUERIES = [
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("limit=abc", "limit"),
    ("limit=-1", "limit"),
    ("type=gift", "type"),
    ("cursor=not-a-cursor", "cursor"),
    ("cursor=WyJhIl0", "cursor"),
    ("cursor=e30", "cursor"),
    ("cursor=%00", "cursor"),
    ("user_id=", "user_id"),
]


def test_bad_history_query_is_422_naming_the_parameter(client, people):
    for query, field in BAD_QUERIES:
        error = assert_error(
            client.get(f"/transactions?{query}", headers=people.alice.headers), 422, "validation_error"
        )
        assert field in error["details"], (query, error)


@pytest.mark.parametrize("value", [2**63, 10**30, 2**64, True, False, -1, 1.5, "1", None, [1]])
def test_forged_history_cursor_is_422(client, people, value):
    """A cursor is the client's to send back: a value no entry id can have is refused, not
    handed to the driver (2**63 overflowed both databases, `true` failed PostgreSQL's cast)."""
    response = client.get("/transactions", query_string={"cursor": cursor_of(value)}, headers=people.alice.headers)
    assert assert_error(response, 422, "validation_error")["details"] == {"cursor": ["invalid cursor"]}


def test_history_limit_bounds_are_accepted(client, people):
    for limit in (1, 200):
        response = client.get(f"/transactions?limit={limit}", headers=people.alice.headers)
        assert response.status_code == 200


# -- reversal ---------------------------------------------------------------------------


def test_reversal_of_a_transfer(client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    original = created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 40))
    rev = created(reverse(client, people.admin.headers, original["id"], reason="sent by mistake"))
    assert rev["type"] == "reversal" and rev["reverses"] == original["id"] and rev["amount"] == 40
    assert rev["from_user_id"] == people.bob.id and rev["to_user_id"] == people.alice.id
    assert rev["description"] == "sent by mistake" and rev["reversed_by"] is None
    assert balances(client, people, "alice", "bob") == [100, 0]

    # The original is unchanged except that it now points at its reversal, everywhere it is shown.
    shown = client.get(f"/transactions/{original['id']}", headers=people.alice.headers).get_json()
    assert shown == {**original, "reversed_by": rev["id"]}
    for headers in (people.alice.headers, people.bob.headers):
        items = client.get("/transactions", headers=headers).get_json()["items"]
        assert [t["id"] for t in items[:2]] == [rev["id"], original["id"]]
        assert items[1]["reversed_by"] == rev["id"]
    assert client.get(f"/transactions/{rev['id']}", headers=people.bob.headers).get_json() == rev


def test_reversals_of_deposit_withdrawal_and_transfer_restore_balances_exactly(client, people):
    dep = deposit(client, people.admin.headers, people.alice.id, 100)
    tr = created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 30))
    wd = withdraw(client, people.alice.headers, people.alice.id, 20)
    assert balances(client, people, "alice", "bob") == [50, 30]

    rev_wd = created(reverse(client, people.admin.headers, wd["id"]))
    assert (rev_wd["from_user_id"], rev_wd["to_user_id"], rev_wd["description"]) == (None, people.alice.id, None)
    assert balances(client, people, "alice", "bob") == [70, 30]

    created(reverse(client, people.admin.headers, tr["id"]))
    assert balances(client, people, "alice", "bob") == [100, 0]

    rev_dep = created(reverse(client, people.admin.headers, dep["id"]))
    assert (rev_dep["from_user_id"], rev_dep["to_user_id"]) == (people.alice.id, None)
    assert balances(client, people, "alice", "bob") == [0, 0]


def test_reversing_twice_is_409_already_reversed(app, client, people):
    dep = deposit(client, people.admin.headers, people.alice.id, 100)
    created(reverse(client, people.admin.headers, dep["id"]))
    before = ledger_snapshot(app)
    assert_error(reverse(client, people.admin.headers, dep["id"]), 409, "already_reversed")
    assert ledger_snapshot(app) == before


def test_reversing_a_reversal_is_422(app, client, people):
    dep = deposit(client, people.admin.headers, people.alice.id, 100)
    rev = created(reverse(client, people.admin.headers, dep["id"]))
    before = ledger_snapshot(app)
    assert_error(reverse(client, people.admin.headers, rev["id"]), 422, "validation_error")
    assert ledger_snapshot(app) == before


def test_reversing_unknown_transaction_is_404(app, client, people):
    before = ledger_snapshot(app)
    assert_error(reverse(client, people.admin.headers, "0" * 36), 404, "not_found")
    assert ledger_snapshot(app) == before


def test_reversal_when_the_credited_side_spent_it_is_409_and_writes_nothing(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    tr = created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 60))
    created(transfer(client, people.bob.headers, people.bob.id, people.carol.id, 50))  # bob spends it
    before = ledger_snapshot(app)
    error = assert_error(reverse(client, people.admin.headers, tr["id"]), 409, "insufficient_funds")
    assert error["details"] == {"balance": 10, "requested": 60}
    assert ledger_snapshot(app) == before
    assert client.get(f"/transactions/{tr['id']}", headers=people.admin.headers).get_json()["reversed_by"] is None
    assert balances(client, people, "alice", "bob", "carol") == [40, 10, 50]


def test_reversal_of_a_spent_deposit_is_409(app, client, people):
    dep = deposit(client, people.admin.headers, people.alice.id, 100)
    withdraw(client, people.alice.headers, people.alice.id, 1)
    before = ledger_snapshot(app)
    error = assert_error(reverse(client, people.admin.headers, dep["id"]), 409, "insufficient_funds")
    assert error["details"] == {"balance": 99, "requested": 100}
    assert ledger_snapshot(app) == before


def test_users_cannot_reverse_even_their_own_transactions(app, client, people):
    deposit(client, people.admin.headers, people.alice.id, 100)
    tr = created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 60))
    before = ledger_snapshot(app)
    for headers in (people.alice.headers, people.bob.headers, people.carol.headers):
        assert_error(reverse(client, headers, tr["id"]), 403, "forbidden")
    assert ledger_snapshot(app) == before


@pytest.mark.parametrize("body", [{"reason": "r" * 501}, {"reason": 5}, {"other": "x"}])
def test_reverse_body_validation(app, client, people, body):
    dep = deposit(client, people.admin.headers, people.alice.id, 100)
    before = ledger_snapshot(app)
    error = assert_error(reverse(client, people.admin.headers, dep["id"], **body), 422, "validation_error")
    assert set(body) <= set(error["details"]), error
    assert ledger_snapshot(app) == before


def test_reverse_without_body_is_accepted(client, people):
    dep = deposit(client, people.admin.headers, people.alice.id, 100)
    response = client.post(f"/transactions/{dep['id']}/reverse", headers=people.admin.headers)
    assert created(response)["description"] is None


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("post", "/transactions", {"from_user_id": "{alice}", "to_user_id": "{bob}", "amount": 5}),
        ("post", "/transactions", {"amount": 1.5}),  # bad body and no token: 401 first
        ("get", "/transactions", None),
        ("get", "/transactions/{tx}", None),
        ("post", "/transactions/{tx}/reverse", {}),
    ],
)
def test_transaction_routes_need_a_valid_token(app, client, people, method, path, body):
    deposit(client, people.admin.headers, people.alice.id, 100)
    tx = created(transfer(client, people.alice.headers, people.alice.id, people.bob.id, 5))
    ids = {"alice": people.alice.id, "bob": people.bob.id, "tx": tx["id"]}
    before = ledger_snapshot(app)
    if body is not None:
        body = {k: (v.format(**ids) if isinstance(v, str) else v) for k, v in body.items()}
    for auth in (None, "Bearer garbage", "Token abc", people.admin.headers["Authorization"][:-2]):
        headers = {"Authorization": auth} if auth else {}
        response = getattr(client, method)(path.format(**ids), json=body, headers=headers)
        error = assert_error(response, 401, "unauthorized")
        assert tx["id"] not in str(error)
    assert ledger_snapshot(app) == before
