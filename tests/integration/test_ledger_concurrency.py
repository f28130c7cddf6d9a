"""Many threads against one app on the configured backend (SQLite, or PostgreSQL + Redis)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.services.ledger_verify import LedgerVerifier
from tests.helpers import DEFAULT_PASSWORD, make_admin
from tests.workload import FlaskHttp, Party, assert_books_balance, run_workload, setup_parties


@pytest.fixture
def http(app):
    return FlaskHttp(app)


@pytest.fixture
def admin(app, http):
    make_admin(app, "admin")
    status, token, _ = http.post("/auth/login", {"username": "admin", "password": DEFAULT_PASSWORD}, {})
    assert status == 200
    return Party("admin", {"Authorization": f"Bearer {token['access_token']}"})


def _race(n: int, call):
    """Run call(i) n times at once, released together by a barrier."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def test_random_workload_conserves_money(app, http, admin):
    parties = setup_parties(http, admin, count=10, funding=500, password=DEFAULT_PASSWORD)
    result = run_workload(http, admin, parties, operations=1500, threads=8, seed=7)
    assert not result.unexpected, result.unexpected[:5]
    assert not result.replay_mismatches, result.replay_mismatches[:5]
    assert result.statuses[201] > 500 and result.statuses[409] > 0  # both outcomes really happened
    balances = assert_books_balance(http, admin, parties, LedgerVerifier(app.container.database()))
    assert sum(balances.values()) <= 10 * 500


def test_racing_withdrawals_never_overdraw(http, admin):
    (party,) = setup_parties(http, admin, count=1, funding=100, password=DEFAULT_PASSWORD)
    results = _race(20, lambda i: http.post("/wallet/withdraw", {"user_id": party.id, "amount": 10}, party.headers))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] * 10 + [409] * 10
    assert all(body["error"]["code"] == "insufficient_funds" for status, body, _ in results if status == 409)
    assert http.get(f"/wallet/balance/{party.id}", party.headers)[1]["balance"] == 0


@pytest.mark.parametrize("kind", ["deposit", "transfer"])
def test_racing_requests_with_one_key_move_money_once(http, admin, kind):
    a, b = setup_parties(http, admin, count=2, funding=100, password=DEFAULT_PASSWORD)
    if kind == "deposit":
        path, body, headers = "/wallet/deposit", {"user_id": a.id, "amount": 40}, admin.headers
    else:
        path, body, headers = "/transactions", {"from_user_id": a.id, "to_user_id": b.id, "amount": 40}, a.headers
    headers = {**headers, "Idempotency-Key": f"race-{kind}"}
    results = _race(12, lambda i: http.post(path, body, headers))
    created = [r for s, r, _ in results if s == 201]
    assert {s for s, _, _ in results} <= {201, 409}
    assert all(r["error"]["code"] == "idempotency_conflict" for s, r, _ in results if s == 409)
    assert len({r["id"] for r in created}) == 1  # every success is the same transaction
    assert sum(1 for s, _, h in results if s == 201 and h.get("Idempotent-Replayed") != "true") == 1
    balance_a = http.get(f"/wallet/balance/{a.id}", admin.headers)[1]["balance"]
    assert balance_a == (140 if kind == "deposit" else 60)


def test_opposite_transfers_between_the_same_wallets_do_not_deadlock(app, http, admin):
    a, b = setup_parties(http, admin, count=2, funding=10_000, password=DEFAULT_PASSWORD)

    def move(i):
        src, dst = (a, b) if i % 2 else (b, a)
        return http.post(
            "/transactions", {"from_user_id": src.id, "to_user_id": dst.id, "amount": 1 + i % 7}, src.headers
        )[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(move, range(400)))
    assert statuses == [201] * 400
    assert_books_balance(http, admin, [a, b], LedgerVerifier(app.container.database()))
    total = sum(http.get(f"/wallet/balance/{p.id}", admin.headers)[1]["balance"] for p in (a, b))
    assert total == 20_000
