"""The module as a module: disabled, the core still works and its routes are gone; the
dashboard page and its assets come from this app; the `report` commands print the data."""

from __future__ import annotations

import csv
import io
import re

import pytest

from app.testing import assert_error, deliver_events


@pytest.mark.credit_settings(modules_disabled="reporting_module")
def test_disabled_the_core_still_works_and_its_routes_are_gone(client, people):
    people.fund(people.alice, 50)
    moved = client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 20},
        headers=people.alice.headers,
    )
    assert moved.status_code == 201
    for path in (
        "/reports/summary?from=2026-01-01&to=2026-01-02",
        "/reports/balances",
        "/dashboard",
        f"/wallet/statement/{people.alice.id}",
    ):
        assert_error(client.get(path, headers=people.admin.headers), 404, "not_found")
    # The balance as of a moment is the ledger's own: it stays.
    as_of = client.get(f"/wallet/balance/{people.bob.id}?as_of=2999-01-01", headers=people.bob.headers)
    assert_error(as_of, 422, "validation_error")
    assert client.get(f"/wallet/balance/{people.bob.id}", headers=people.bob.headers).get_json()["balance"] == 20
    status = client.get("/modules/status").get_json()
    assert status["modules"]["reporting_module"]["status"] == "disabled"


def test_the_dashboard_page_and_assets_come_from_this_app(client):
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'id="login"' in html and "Content-Security-Policy" in page.headers
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/dashboard/assets/") for source in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
    assert "sessionStorage" in client.get("/dashboard/assets/dashboard.js").get_data(as_text=True)
    assert client.get("/dashboard/assets/../routes.py").status_code == 404


def test_panels_are_svg_for_admins_and_auditors_only(client, people):
    people.fund(people.alice, 70)
    for path in ("/dashboard/panels/volumes.svg?days=7", "/dashboard/panels/modules.svg"):
        response = client.get(path, headers=people.admin.headers)
        assert response.status_code == 200, path
        svg = response.get_json()["svg"]
        assert svg.startswith("<svg")
        assert not re.search(r'(?:href|src)="(?:https?:)?//|url\((?:https?:)?//|<script', svg), "loads from elsewhere"
        assert_error(client.get(path, headers=people.alice.headers), 403, "forbidden")
    graph = client.get("/dashboard/panels/modules.svg", headers=people.admin.headers).get_json()["svg"]
    assert 'data-module="reporting_module" data-status="initialized"' in graph
    assert_error(
        client.get("/dashboard/panels/volumes.svg?tz=Nowhere/Land", headers=people.admin.headers),
        422,
        "validation_error",
    )


def test_report_commands_print_the_same_data(app, client, people, credit_cli):
    people.fund(people.alice, 70)
    client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 30},
        headers=people.alice.headers,
    )
    deliver_events(app)
    api = client.get(
        "/reports/summary",
        query_string={"from": "2020-01-01", "to": "2999-01-01", "interval": "month"},
        headers=people.admin.headers,
    )
    assert api.status_code == 422  # more than 366 months: the command says so too
    result = credit_cli("report", "summary", "--from", "2020-01-01", "--to", "2999-01-01", "--interval", "month")
    assert result.exit_code != 0 and "366" in result.output

    result = credit_cli(
        "report", "summary", "--from", "2020-01-01", "--to", "2040-01-01", "--interval", "month", "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sum(int(r["deposits_amount"]) for r in rows) == 70 and sum(int(r["transfers_count"]) for r in rows) == 1

    result = credit_cli("report", "statement", people.bob.id, "--format", "csv")
    assert result.exit_code == 0, result.output
    (line,) = list(csv.DictReader(io.StringIO(result.output)))
    assert (line["type"], line["amount"], line["balance_after"], line["counterparty_id"]) == (
        "transfer",
        "30",
        "30",
        people.alice.id,
    )
    table = credit_cli("report", "statement", people.alice.id)
    assert table.exit_code == 0 and "opening 0, closing 40" in table.output
    assert credit_cli("report", "statement", "nobody").exit_code == 1
    assert credit_cli("report", "summary", "--from", "x", "--to", "2026-01-01").exit_code == 2
