"""One vocabulary: each enum of app.vocabulary is the only list of its values.

The model's CHECK constraints and the API's schemas are built from the enums, so the tests
here catch what is not: a migration that does not match (adding a member needs one), and an
enum copied inline into the OpenAPI document instead of referring to its component.
"""

from __future__ import annotations

import re
from enum import StrEnum

import pytest
from sqlalchemy import inspect

from app.infrastructure.tables import Base
from app.kernel.manager import ModuleLifecycle
from app.testing import assert_error
from app.vocabulary import NotificationChannel, NotificationStatus, NotificationTopic, Role, TransactionType
from tests.helpers import user_with_token

# (table, CHECK constraint, enum) for every CHECK built from the vocabulary.
CHECKS = [
    ("transactions", "ck_transactions_type", TransactionType),
    ("users", "ck_users_role", Role),
    ("notifications", "ck_notifications_topic", NotificationTopic),
    ("notification_deliveries", "ck_notification_deliveries_channel", NotificationChannel),
    ("notification_deliveries", "ck_notification_deliveries_status", NotificationStatus),
]


def _quoted(sql: str) -> set[str]:
    """The quoted literals of a CHECK's SQL, as SQLite and PostgreSQL both spell them."""
    return set(re.findall(r"'([^']*)'", sql))


@pytest.mark.parametrize(("table", "name", "enum"), CHECKS)
def test_the_model_and_the_migrated_database_check_exactly_the_enum(app, table, name, enum: type[StrEnum]):
    values = {member.value for member in enum}
    (model,) = [c for c in Base.metadata.tables[table].constraints if c.name == name]
    assert _quoted(str(model.sqltext)) == values
    # The database under test was built by the migrations, not from the model.
    reflected = inspect(app.container.database().engine).get_check_constraints(table)
    (migrated,) = [c for c in reflected if c["name"] == name]
    assert _quoted(migrated["sqltext"]) == values, f"a migration must widen {name} to {sorted(values)}"


def _enums(node, path=""):
    """(path, enum list) of every inline `enum` in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum":
                yield path, value
            else:
                yield from _enums(value, f"{path}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _enums(value, f"{path}/{n}")


def test_openapi_lists_each_enum_once_and_refers_to_it(client):
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    vocabularies = (TransactionType, Role, ModuleLifecycle)
    for enum in vocabularies:
        assert schemas[enum.__name__] == {"type": "string", "enum": [member.value for member in enum]}
    copies = [
        path
        for path, values in _enums(spec)
        if any(set(values) - {None} == {m.value for m in enum} for enum in vocabularies)
        and path not in {f"/components/schemas/{enum.__name__}" for enum in vocabularies}
    ]
    assert not copies, f"inline copies of a vocabulary: {copies}"

    type_ref, role_ref = {"$ref": "#/components/schemas/TransactionType"}, {"$ref": "#/components/schemas/Role"}
    assert schemas["Transaction"]["properties"]["type"] == type_ref
    (query,) = [p for p in spec["paths"]["/transactions"]["get"]["parameters"] if p.get("name") == "type"]
    assert query["schema"] == type_ref
    assert schemas["User"]["properties"]["role"] == role_ref
    assert schemas["UserUpdate"]["properties"]["role"] == {"allOf": [role_ref], "description": "Admin only"}
    assert schemas["ModuleStatus"]["properties"]["status"] == {"$ref": "#/components/schemas/ModuleLifecycle"}


def test_history_filters_by_every_type_and_names_them_when_refusing(client):
    _, headers = user_with_token(client, "alice")
    for member in TransactionType:
        response = client.get(f"/transactions?type={member.value}", headers=headers)
        assert response.status_code == 200, (member, response.get_json())
    error = assert_error(client.get("/transactions?type=gift", headers=headers), 422, "validation_error")
    assert error["details"] == {"type": [f"Must be one of: {', '.join(TransactionType)}."]}


def test_a_user_update_accepts_every_role_and_refuses_others(client, people):
    admin, alice = people.admin.headers, people.alice.id
    for member in Role:
        response = client.patch(f"/users/{alice}", json={"role": member.value}, headers=admin)
        assert response.status_code == 200 and response.get_json()["role"] == member.value
    error = assert_error(client.patch(f"/users/{alice}", json={"role": "root"}, headers=admin), 422, "validation_error")
    assert error["details"] == {"role": [f"Must be one of: {', '.join(Role)}."]}
