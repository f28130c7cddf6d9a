"""A history page is a keyset read on an index, not a scan: the plan of the very statement
GET /transactions runs is checked on the backend under test."""

from __future__ import annotations

import pytest

from app.infrastructure.database import recorded_statements


@pytest.fixture
def history_statements(app, client, people):
    """Run three history requests (first page, next page, next page filtered by type) and
    return the ledger query each executed, as (statement, parameters)."""
    alice_h = people.alice.headers
    for amount in range(1, 6):
        people.fund(people.alice, amount)
        people.fund(people.bob, amount)
    client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 3},
        headers=alice_h,
    )

    engine = app.container.database().engine
    with recorded_statements(engine, "FROM ledger_entries", "ORDER BY") as captured:
        first = client.get("/transactions?limit=2", headers=alice_h).get_json()
        cursor = first["next_cursor"]
        assert cursor
        assert client.get(f"/transactions?limit=2&cursor={cursor}", headers=alice_h).status_code == 200
        assert client.get(f"/transactions?limit=2&type=deposit&cursor={cursor}", headers=alice_h).status_code == 200
    assert len(captured) == 3, captured
    return engine, captured


def _plan(engine, statement, parameters) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return "\n".join(row[-1] for row in rows)
        # A handful of rows would make a scan-and-sort cheapest; ask whether the index *can* serve
        # the page in order: with these off, a Sort or Seq Scan only appears if nothing else can.
        for setting in ("seqscan", "sort", "bitmapscan", "hashjoin", "mergejoin"):
            conn.exec_driver_sql(f"SET enable_{setting} = off")
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        conn.rollback()
        return "\n".join(row[0] for row in rows)


def test_history_pages_use_the_account_id_index(history_statements):
    engine, captured = history_statements
    for (statement, parameters), index in zip(
        captured,
        ["ix_ledger_entries_account_id_id", "ix_ledger_entries_account_id_id", "ix_ledger_entries_account_type_id"],
        strict=True,
    ):
        plan = _plan(engine, statement, parameters)
        assert index in plan, (statement, plan)
        if engine.dialect.name == "sqlite":
            assert "SCAN ledger_entries" not in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # the index order is the page order: no sort
        else:
            assert "Seq Scan on ledger_entries" not in plan, plan
            assert "Sort" not in plan, plan


def test_the_cursor_page_filters_on_the_index_key(history_statements):
    _, captured = history_statements
    statement = captured[1][0].lower()
    assert "ledger_entries.account_id >=" in statement and "ledger_entries.account_id <=" in statement
    assert "ledger_entries.id <" in statement
    assert "order by ledger_entries.account_id desc, ledger_entries.id desc" in statement and "limit" in statement
