"""History on PostgreSQL when one wallet holds most of the ledger and others wrote last.

The planner then likes a backward scan of the primary key, filtering out every newer
entry of every other wallet: a page whose cost grows with unrelated traffic. The plan of
the statement GET /transactions really runs, with the planner's own choices (nothing
disabled), must read the page off the wallet's index.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app import create_app
from app.config import load_settings
from app.infrastructure.database import recorded_statements
from tests import backends
from tests.helpers import bearer, login, make_admin, register

pytestmark = pytest.mark.integration

OWN_ENTRIES, NEWER_FOREIGN_ENTRIES = 60_000, 10_000


def add_deposits(conn, account_id: str, user_id: str, count: int) -> None:
    """`count` one-credit deposits to a wallet, written in bulk (transactions and both legs)."""
    conn.execute(
        text("""
        INSERT INTO transactions (id, type, amount, to_user_id, created_by, created_at)
        SELECT md5(:a || g)::uuid::text, 'deposit', 1, :u, 'seed', now() FROM generate_series(1, :n) g"""),
        {"a": account_id, "u": user_id, "n": count},
    )
    conn.execute(
        text("""
        INSERT INTO ledger_entries (transaction_id, account_id, amount, tx_type, created_at)
        SELECT md5(:a || g)::uuid::text, leg.account_id, leg.amount, 'deposit', now()
        FROM generate_series(1, :n) g
        CROSS JOIN (VALUES ('system:issuance', -1, 1), (:a, 1, 2)) AS leg(account_id, amount, o)
        ORDER BY g, leg.o"""),
        {"a": account_id, "n": count},
    )
    conn.execute(
        text("UPDATE accounts SET balance = balance + :n, version = version + 1 WHERE id = :a"),
        {"a": account_id, "n": count},
    )


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    with backends.throwaway_postgres() as database_url:
        settings = load_settings(
            environ={},
            database_url=database_url,
            cache_url="memory://",
            secret_key="test-secret-key-0123456789abcdef",
            instance_path=str(tmp_path_factory.mktemp("skew")),
        )
        app = create_app(settings)
        client = app.test_client()
        make_admin(app)
        admin = bearer(login(client, "admin"))
        heavy, light = register(client, "heavy")["id"], register(client, "light")["id"]
        engine = app.container.database().engine
        with engine.begin() as conn:
            accounts = dict(
                conn.execute(
                    text("SELECT user_id, id FROM accounts WHERE user_id IN (:h, :l)"), {"h": heavy, "l": light}
                ).all()
            )
            add_deposits(conn, accounts[heavy], heavy, OWN_ENTRIES // 2)  # two legs each: half its rows
            add_deposits(conn, accounts[light], light, NEWER_FOREIGN_ENTRIES // 2)
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
        yield app, client, admin, heavy
        app.module_manager.shutdown()


def page_statement(app, client, admin, query: str):
    """(response, the ledger statement and parameters the request executed)."""
    with recorded_statements(app.container.database().engine, "FROM ledger_entries", "ORDER BY") as captured:
        response = client.get(f"/transactions?{query}", headers=admin)
    assert len(captured) == 1, captured
    return response, captured[0]


@pytest.mark.parametrize(
    "extra, index", [("", "ix_ledger_entries_account_id_id"), ("&type=deposit", "ix_ledger_entries_account_type_id")]
)
def test_the_heavy_wallets_page_is_read_off_its_index(skewed, extra, index):
    app, client, admin, heavy = skewed
    response, (statement, parameters) = page_statement(app, client, admin, f"user_id={heavy}&limit=50{extra}")
    assert response.status_code == 200
    page = response.get_json()
    assert len(page["items"]) == 50 and all(item["to_user_id"] == heavy for item in page["items"])
    with app.container.database().engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    assert f"Index Scan Backward using {index}" in plan, plan
    assert "pk_ledger_entries" not in plan and "Sort" not in plan, plan
