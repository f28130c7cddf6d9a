"""On PostgreSQL the database itself refuses, at commit, a transaction whose entries do not
sum to zero (migration 0002's deferred constraint trigger), whatever wrote them."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from app.infrastructure.migrations import alembic_config
from app.services.ledger_verify import LedgerVerifier
from tests import backends
from tests.helpers import deposit

pytestmark = pytest.mark.integration

TRANSACTION = (
    "INSERT INTO transactions (id, type, amount, created_by, created_at) VALUES (:id, 'deposit', 5, 't', now())"
)
ENTRY = (
    "INSERT INTO ledger_entries (transaction_id, account_id, amount, tx_type, created_at)"
    " VALUES (:id, :account, :amount, 'deposit', now())"
)


@pytest.fixture
def database_url():
    with backends.throwaway_postgres() as url:
        yield url


@pytest.fixture
def credit_database_url(database_url):
    """The plugin's app runs on this test's PostgreSQL database, whatever the selected backend."""
    return database_url


@pytest.fixture
def credit_cache_url():
    return "memory://"


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def post_by_hand(engine, transaction_id: str, *amounts: int) -> None:
    """A transaction and its entries (between the system accounts), one statement each."""
    with engine.begin() as conn:
        conn.execute(text(TRANSACTION), {"id": transaction_id})
        for n, amount in enumerate(amounts):
            account = "system:issuance" if n % 2 == 0 else "system:redemption"
            conn.execute(text(ENTRY), {"id": transaction_id, "account": account, "amount": amount})


def transactions(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT id FROM transactions ORDER BY id")))


def test_an_unbalanced_transaction_is_refused_at_commit(engine):
    with pytest.raises(ProgrammingError, match="ledger transaction unbalanced does not balance: .* sum to -1"):
        post_by_hand(engine, "unbalanced", -5, 4)
    assert transactions(engine) == []


def test_a_balanced_transaction_written_in_several_statements_passes(engine):
    """The check waits for COMMIT: the first entry alone does not balance, and is accepted."""
    post_by_hand(engine, "balanced", -5, 3, 2)
    assert transactions(engine) == ["balanced"]


def test_an_entry_moved_away_is_checked_on_the_transaction_it_left(engine):
    post_by_hand(engine, "first", -5, 3, 2)
    moved = "UPDATE ledger_entries SET transaction_id = 'second' WHERE transaction_id = 'first' AND amount = 2"
    with pytest.raises(ProgrammingError, match="transaction first does not balance"), engine.begin() as conn:
        conn.execute(text(TRANSACTION), {"id": "second"})
        conn.execute(text(ENTRY), {"id": "second", "account": "system:issuance", "amount": -2})
        conn.execute(text(moved))  # "second" now balances; "first" does not
    assert transactions(engine) == ["first"]


def test_the_apps_postings_pass_it(engine, app, client, people):
    """Deposits, withdrawals, transfers (one function call, with a key), refusals and reversals."""
    admin, alice, alice_h, bob = people.admin.headers, people.alice.id, people.alice.headers, people.bob.id
    deposit(client, admin, alice, 50)
    body = {"from_user_id": alice, "to_user_id": bob, "amount": 20}
    keyed = {**alice_h, "Idempotency-Key": "t"}
    transfer = client.post("/transactions", json=body, headers=keyed)
    assert transfer.status_code == 201
    assert client.post("/transactions", json=body, headers=keyed).headers["Idempotent-Replayed"] == "true"
    assert client.post("/transactions", json={**body, "amount": 99}, headers=alice_h).status_code == 409
    withdraw = {"user_id": alice, "amount": 5}
    assert client.post("/wallet/withdraw", json=withdraw, headers=alice_h).status_code == 201
    reverse = client.post(f"/transactions/{transfer.get_json()['id']}/reverse", json={}, headers=admin)
    assert reverse.status_code == 201
    assert LedgerVerifier(app.container.database()).verify().ok
    with engine.connect() as conn:  # and it was there to refuse them
        assert conn.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_entries_balance'")) == 1


def test_the_migration_downgrades_cleanly(database_url, engine):
    command.downgrade(alembic_config(database_url), "0001")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_entries_balance'")) == 0
        assert conn.scalar(text("SELECT count(*) FROM pg_proc WHERE proname = 'ledger_transaction_balances'")) == 0
    post_by_hand(engine, "unchecked", -5, 4)  # nothing refuses it any more
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries"))
        conn.execute(text("DELETE FROM transactions"))
    command.upgrade(alembic_config(database_url), "head")
    with pytest.raises(ProgrammingError, match="does not balance"):
        post_by_hand(engine, "checked", -5, 4)
