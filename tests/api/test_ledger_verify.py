"""`credit-system ledger verify` on a clean and on a deliberately corrupted ledger, and the
database's own refusal of a negative balance."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from app.infrastructure.database_url import masked_url
from app.infrastructure.tables import Account, LedgerEntry
from app.services.ledger_verify import LedgerVerifier
from app.testing import ledger_snapshot
from tests.helpers import balance_of, deposit, user_with_token


@pytest.fixture
def busy(client, people):
    """A ledger with every kind of transaction, a refused one and a stored refusal."""
    admin, alice_h, bob_h = people.admin.headers, people.alice.headers, people.bob.headers
    a, b, c = people.alice.id, people.bob.id, people.add("carol").id
    deposit(client, admin, a, 1000)
    deposit(client, admin, b, 200)
    dep = deposit(client, admin, c, 5)

    def ok(response):
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    tr = ok(client.post("/transactions", json={"from_user_id": a, "to_user_id": b, "amount": 300}, headers=alice_h))
    ok(client.post("/transactions", json={"from_user_id": b, "to_user_id": c, "amount": 50}, headers=bob_h))
    ok(client.post("/wallet/withdraw", json={"user_id": a, "amount": 100}, headers=alice_h))
    ok(client.post("/wallet/withdraw", json={"user_id": b, "amount": 25}, headers=admin))
    ok(client.post(f"/transactions/{tr['id']}/reverse", json={"reason": "dispute"}, headers=admin))
    ok(client.post(f"/transactions/{dep['id']}/reverse", json={}, headers=admin))
    refused = client.post(
        "/transactions",
        json={"from_user_id": b, "to_user_id": a, "amount": 10_000},
        headers={**bob_h, "Idempotency-Key": "too-much"},
    )
    assert refused.status_code == 409
    balances = {a: 1000 - 300 - 100 + 300, b: 200 + 300 - 50 - 25 - 300, c: 5 + 50 - 5}
    for user_id, expected in balances.items():
        assert balance_of(client, admin, user_id) == expected
    return {"alice": a, "bob": b, "carol": c, "transfer": tr["id"], "balances": balances}


def test_verify_on_an_empty_ledger(settings, credit_cli, app):
    result = credit_cli("ledger", "verify")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"database: {masked_url(settings.database_url)}"
    assert "transactions: 0" in result.output and "ledger ok" in result.output


def test_verify_on_a_clean_ledger_reports_money_conserved(app, credit_cli, busy):
    result = credit_cli("ledger", "verify")
    assert result.exit_code == 0, result.output
    issued, redeemed = 1000 + 200 + 5 - 5, 100 + 25
    held = sum(busy["balances"].values())
    assert held == issued - redeemed
    assert (
        f"transactions: 9, wallets: 4, issued: {issued}, redeemed: {redeemed}, held in wallets: {held}" in result.output
    )
    assert result.output.strip().endswith("ledger ok")

    report = LedgerVerifier(app.container.database()).verify()
    assert report.ok and report.total_balance == held and report.wallets == 4


def test_verify_detects_a_tampered_balance(app, credit_cli, busy):
    with app.container.database().engine.begin() as conn:
        conn.execute(update(Account).where(Account.user_id == busy["bob"]).values(balance=Account.balance + 1))
    result = credit_cli("ledger", "verify")
    assert result.exit_code == 1, result.output
    assert "stored balance differs from entries" in result.output
    line = next(line for line in result.output.splitlines() if "stored balance differs" in line)
    assert busy["bob"] in line and busy["alice"] not in line
    assert "money not conserved" in result.output
    assert "ledger ok" not in result.output


def test_verify_detects_a_deleted_ledger_entry(app, credit_cli, busy):
    with app.container.database().engine.begin() as conn:
        wallet = conn.scalar(select(Account.id).where(Account.user_id == busy["bob"]))
        entry = conn.scalar(
            select(LedgerEntry.id).where(
                LedgerEntry.transaction_id == busy["transfer"], LedgerEntry.account_id == wallet
            )
        )
        conn.execute(delete(LedgerEntry).where(LedgerEntry.id == entry))
    result = credit_cli("ledger", "verify")
    assert result.exit_code == 1, result.output
    assert f"unbalanced transaction: {busy['transfer']}" in result.output
    # Bob's stored balance no longer matches his remaining entries either.
    line = next(line for line in result.output.splitlines() if "stored balance differs" in line)
    assert busy["bob"] in line


def test_verify_detects_a_transaction_without_entries(app, credit_cli, busy):
    with app.container.database().engine.begin() as conn:
        conn.execute(delete(LedgerEntry).where(LedgerEntry.transaction_id == busy["transfer"]))
    result = credit_cli("ledger", "verify")
    assert result.exit_code == 1, result.output
    assert f"transaction without entries: {busy['transfer']}" in result.output


def test_the_database_refuses_a_negative_balance(app, client):
    user, _ = user_with_token(client, "alice")
    before = ledger_snapshot(app)
    engine = app.container.database().engine
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(update(Account).where(Account.user_id == user["id"]).values(balance=-1))
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text("UPDATE accounts SET balance = balance - 1 WHERE user_id = :u"), {"u": user["id"]})
    assert ledger_snapshot(app) == before


def test_every_wallet_entry_carries_the_balance_it_left(app, busy):
    """Both writers (and the function writer's fallback, on PostgreSQL) write balance_after:
    the running sum of the wallet's entries in id order, ending at the stored balance."""
    with app.container.database().engine.connect() as conn:
        rows = conn.execute(
            select(LedgerEntry.account_id, LedgerEntry.amount, LedgerEntry.balance_after, Account.kind, Account.user_id)
            .join(Account, Account.id == LedgerEntry.account_id)
            .order_by(LedgerEntry.id)
        ).all()
    running: dict[str, int] = {}
    for account_id, amount, balance_after, kind, _ in rows:
        if kind != "user":
            assert balance_after is None
            continue
        running[account_id] = running.get(account_id, 0) + amount
        assert balance_after == running[account_id]
    last = {user_id: balance_after for _, _, balance_after, kind, user_id in rows if kind == "user"}
    assert last == busy["balances"]


def test_verify_detects_a_tampered_balance_after(app, credit_cli, busy):
    with app.container.database().engine.begin() as conn:
        wallet = conn.scalar(select(Account.id).where(Account.user_id == busy["carol"]))
        entry = conn.scalar(select(func.min(LedgerEntry.id)).where(LedgerEntry.account_id == wallet))
        conn.execute(update(LedgerEntry).where(LedgerEntry.id == entry).values(balance_after=999))
    result = credit_cli("ledger", "verify")
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if "balance_after differs" in line)
    assert f"'entry_id': {entry}" in line and "'stored': 999" in line and "'entries': 5" in line
    assert "ledger ok" not in result.output
