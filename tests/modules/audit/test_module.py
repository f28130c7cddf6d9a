"""audit_module in the module system: listed, its health, and disabling it leaves the rest working."""

from __future__ import annotations

import pytest

from app.testing import deliver_events


def test_it_is_listed_with_its_dependencies(credit_client, credit_cli):
    status = credit_client.get("/modules/status").json
    assert status["modules"]["audit_module"]["status"] == "initialized"
    assert set(status["modules"]["audit_module"]["dependencies"]) == {"connection_api", "user_management"}
    result = credit_cli("modules")
    assert result.exit_code == 0 and "audit_module" in result.output


def test_its_types_are_listed_and_its_backlog_is_in_its_health(credit_app, credit_client, people):
    types = {t["type"] for t in credit_client.get("/events/types", headers=people.alice.headers).json}
    assert {"audit.read", "audit.exported", "audit.checkpoint", "retention.purged"} <= types
    deliver_events(credit_app)
    health = credit_client.get("/modules/audit_module/health", headers=people.admin.headers).json
    assert health["status"] == "healthy" and health["events"]["backlog"] == 0


@pytest.mark.credit_settings(modules_disabled="audit_module")
def test_disabled_the_core_works_and_its_routes_are_gone(credit_app, credit_client, people):
    assert credit_client.get("/modules/status").json["modules"]["audit_module"]["status"] == "disabled"
    people.fund(people.alice, 30)
    response = credit_client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 10},
        headers=people.alice.headers,
    )
    assert response.status_code == 201
    deliver_events(credit_app)
    assert credit_client.get("/audit/entries", headers=people.admin.headers).status_code == 404
    assert credit_client.get("/health").json["status"] == "healthy"
    assert "/audit/entries" not in credit_client.get("/openapi.json").json["paths"]
