"""Migration 0006 backfills balance_after on entries written before it, on SQLite and
PostgreSQL: each wallet entry gets its wallet's running sum in id order, system entries
stay NULL; and the writers carry on from there."""

from __future__ import annotations

import random
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from app import create_app
from app.config import load_settings
from app.infrastructure.migrations import alembic_config, upgrade
from app.services.ledger_verify import LedgerVerifier
from tests import backends
from tests.helpers import bearer, deposit, login, make_admin

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def database_before_balance_after(backend: str, tmp_path):
    """A database of the given backend migrated to 0005 (before balance_after), its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/before.db"
        upgrade(url, "0005")
        yield url
        return
    try:
        backends.check_postgres()
    except Exception as exc:
        backends.unavailable("PostgreSQL", exc)
    database = backends.PostgresDatabase()
    database.create(migrate=False)
    try:
        upgrade(database.url, "0005")
        yield database.url
    finally:
        database.drop()


def write_history_by_hand(url: str) -> dict[str, list[tuple[int, int | None]]]:
    """Three users and a few hundred postings, as 0005's schema stores them; per account id
    the (amount, expected balance_after) of its entries in id order."""
    rng = random.Random(15)
    engine = create_engine(url)
    expected: dict[str, list[tuple[int, int | None]]] = {}
    balances: dict[str, int] = {}
    with engine.begin() as conn:
        wallets = []
        for n in range(3):
            user_id, account_id = str(uuid.uuid4()), str(uuid.uuid4())
            conn.execute(
                text(
                    "INSERT INTO users (id, username, username_key, email, email_key, password_hash, role,"
                    " is_active, token_version, created_at, updated_at)"
                    " VALUES (:id, :u, :u, :e, :e, 'x', 'user', :t, 0, :c, :c)"
                ),
                {"id": user_id, "u": f"old{n}", "e": f"old{n}@example.com", "t": True, "c": T0},
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (id, user_id, kind, balance, version, created_at, updated_at)"
                    " VALUES (:id, :u, 'user', 0, 0, :c, :c)"
                ),
                {"id": account_id, "u": user_id, "c": T0},
            )
            wallets.append((user_id, account_id))
            balances[account_id] = 0
        for step in range(300):
            kind = rng.choice(["deposit", "transfer", "withdrawal"])
            amount = rng.randint(1, 50)
            (_, a), (_, b) = rng.sample(wallets, 2)
            legs = {
                "deposit": [("system:issuance", -amount), (a, amount)],
                "withdrawal": [(a, -amount), ("system:redemption", amount)],
                "transfer": [(a, -amount), (b, amount)],
            }[kind]
            if any(account in balances and balances[account] + delta < 0 for account, delta in legs):
                continue
            tx_id, at = str(uuid.uuid4()), T0 + timedelta(minutes=step)
            conn.execute(
                text(
                    "INSERT INTO transactions (id, type, amount, created_by, created_at)"
                    " VALUES (:id, :type, :amount, 'hand', :at)"
                ),
                {"id": tx_id, "type": kind, "amount": amount, "at": at},
            )
            for account, delta in legs:
                conn.execute(
                    text(
                        "INSERT INTO ledger_entries (transaction_id, account_id, amount, tx_type, created_at)"
                        " VALUES (:tx, :account, :amount, :type, :at)"
                    ),
                    {"tx": tx_id, "account": account, "amount": delta, "type": kind, "at": at},
                )
                after = None
                if account in balances:
                    balances[account] += delta
                    after = balances[account]
                expected.setdefault(account, []).append((delta, after))
        for account, balance in balances.items():
            conn.execute(text("UPDATE accounts SET balance = :b WHERE id = :id"), {"b": balance, "id": account})
    engine.dispose()
    return expected


def stored(url: str) -> dict[str, list[tuple[int, int | None]]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT account_id, amount, balance_after FROM ledger_entries ORDER BY id")).all()
    engine.dispose()
    found: dict[str, list[tuple[int, int | None]]] = {}
    for account, amount, after in rows:
        found.setdefault(account, []).append((amount, after))
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_migration_backfills_balance_after_and_the_writers_carry_on(backend, tmp_path):
    with database_before_balance_after(backend, tmp_path) as url:
        expected = write_history_by_hand(url)
        assert sum(len(entries) for entries in expected.values()) > 300  # a real history went in
        upgrade(url)
        assert stored(url) == expected
        assert all(after is None for _, after in expected["system:issuance"])

        settings = load_settings(
            environ={},
            database_url=url,
            cache_url="memory://",
            secret_key="test-secret-key-0123456789abcdef",
            instance_path=str(tmp_path),
        )
        app = create_app(settings)
        try:
            client = app.test_client()
            make_admin(app)
            admin = bearer(login(client, "admin"))
            account_id, balance = max(
                ((account, entries[-1][1]) for account, entries in expected.items() if entries[-1][1] is not None),
                key=lambda pair: pair[0],
            )
            engine = create_engine(url)
            with engine.connect() as conn:
                user_id = conn.scalar(text("SELECT user_id FROM accounts WHERE id = :id"), {"id": account_id})
            engine.dispose()
            deposit(client, admin, user_id, 7)
            assert stored(url)[account_id][-1] == (7, balance + 7)
            assert LedgerVerifier(app.container.database()).verify().ok
        finally:
            app.container.database().dispose()


def test_the_migration_downgrades_and_upgrades_again(tmp_path):
    with database_before_balance_after("sqlite", tmp_path) as url:
        expected = write_history_by_hand(url)
        upgrade(url)
        command.downgrade(alembic_config(url), "0005")
        engine = create_engine(url)
        with engine.connect() as conn:
            columns = [row[1] for row in conn.execute(text("PRAGMA table_info(ledger_entries)"))]
        engine.dispose()
        assert "balance_after" not in columns
        upgrade(url)
        assert stored(url) == expected
