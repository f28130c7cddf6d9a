"""Migration 0009 folds a ledger that predates it into the aggregates, on SQLite and
PostgreSQL: the same report as the event handler builds; the events it already counted
count nothing when they are delivered afterwards."""

from __future__ import annotations

from alembic import command

from app.infrastructure.migrations import alembic_config, upgrade
from app.testing import deliver_events
from tests.modules.reporting.test_reports import _counted_events, totals

RANGE = {"from": "2020-01-01", "to": "2050-01-01", "interval": "month"}


def month_summary(client, headers) -> list[dict]:
    buckets = []
    for year in range(2020, 2050, 15):  # 366 buckets at most per request
        query = {**RANGE, "from": f"{year}-01-01", "to": f"{year + 15}-01-01"}
        response = client.get("/reports/summary", query_string=query, headers=headers)
        assert response.status_code == 200, response.get_json()
        buckets += [b for b in response.get_json()["buckets"] if b["deposits"]["count"] or b["new_users"]]
    return buckets


def test_the_migration_backfills_what_the_handler_would_have_counted(app, client, people, credit_database_url):
    people.fund(people.alice, 500)
    for amount in (30, 40):
        client.post(
            "/transactions",
            json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": amount},
            headers=people.alice.headers,
        )
    client.post("/wallet/withdraw", json={"user_id": people.bob.id, "amount": 5}, headers=people.bob.headers)
    deliver_events(app)
    by_handler, handled = month_summary(client, people.admin.headers), totals(app)
    assert by_handler and by_handler[-1]["transfers"] == {"count": 2, "amount": 70}

    app.container.database().engine.dispose()
    command.downgrade(alembic_config(credit_database_url), "0008")
    upgrade(credit_database_url)
    assert totals(app) == handled
    assert month_summary(client, people.admin.headers) == by_handler

    module = app.module_manager.get_module("reporting_module")
    for event in _counted_events(app):  # delivered late: counted by the migration already
        with app.container.database().unit_of_work() as uow:
            module.handle_events(uow, [event])
            uow.commit()
    assert totals(app) == handled
