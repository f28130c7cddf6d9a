"""Users' optional phone (E.164): set at registration or by PATCH, cleared with null, named in
user.updated's data.changed, refused with 422 when malformed (nothing written)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.infrastructure.tables import OutboxEvent, User
from app.testing import DEFAULT_PASSWORD, assert_error, bearer, login


def _counts(app) -> tuple[int, int]:
    with app.container.database().unit_of_work(write=False) as uow:
        users = uow.session.scalar(select(func.count()).select_from(User))
        events = uow.session.scalar(select(func.count()).select_from(OutboxEvent))
    return users, events


def _sign_up(client, username: str, **extra) -> dict:
    body = {"username": username, "email": f"{username}@example.com", "password": DEFAULT_PASSWORD, **extra}
    response = client.post("/users", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_phone_is_optional_and_null_when_not_given(client):
    user = _sign_up(client, "nophone")
    assert user["phone"] is None


def test_phone_given_at_registration_is_shown_and_in_user_created(app, client):
    user = _sign_up(client, "withphone", phone="+4915112345678")
    assert user["phone"] == "+4915112345678"
    headers = bearer(login(client, "withphone"))
    assert client.get("/users/me", headers=headers).get_json()["phone"] == "+4915112345678"
    with app.container.database().engine.connect() as conn:
        data = conn.scalar(
            select(OutboxEvent.data).where(OutboxEvent.type == "user.created").order_by(OutboxEvent.id.desc())
        )
    assert '"phone":"+4915112345678"' in data


BAD_PHONES = [
    "4915112345678",
    "+0123456789",
    "+49 151 1234567",
    "+49-151",
    "+1234",
    "+1234567890123456",
    "+49abc1234567",
    4915112345678,
    True,
    ["+4915112345678"],
    "+49151\u000012345",
]


@pytest.mark.parametrize("phone", BAD_PHONES, ids=repr)
def test_a_malformed_phone_at_registration_is_422_and_writes_nothing(app, client, phone):
    before = _counts(app)
    body = {"username": "badphone", "email": "badphone@example.com", "password": DEFAULT_PASSWORD, "phone": phone}
    error = assert_error(client.post("/users", json=body), 422, "validation_error")
    assert "phone" in error["details"]
    assert _counts(app) == before


def test_self_sets_changes_and_clears_the_phone_each_named_in_user_updated(app, client):
    user = _sign_up(client, "dora")
    headers = bearer(login(client, "dora"))
    response = client.patch(f"/users/{user['id']}", json={"phone": "+14155550123"}, headers=headers)
    assert response.status_code == 200 and response.get_json() == {**user, "phone": "+14155550123"}
    # the same value again changes nothing and records no event
    assert client.patch(f"/users/{user['id']}", json={"phone": "+14155550123"}, headers=headers).status_code == 200
    response = client.patch(f"/users/{user['id']}", json={"phone": None}, headers=headers)
    assert response.status_code == 200 and response.get_json()["phone"] is None
    with app.container.database().engine.connect() as conn:
        updates = conn.scalars(
            select(OutboxEvent.data).where(OutboxEvent.type == "user.updated", OutboxEvent.target_id == user["id"])
        ).all()
    assert len(updates) == 2
    assert all('"changed":["phone"]' in data for data in updates)


@pytest.mark.parametrize("phone", BAD_PHONES, ids=repr)
def test_a_malformed_phone_by_patch_is_422_and_changes_nothing(app, client, phone):
    user = _sign_up(client, "erik", phone="+4915112345678")
    headers = bearer(login(client, "erik"))
    before = _counts(app)
    error = assert_error(
        client.patch(f"/users/{user['id']}", json={"phone": phone}, headers=headers), 422, "validation_error"
    )
    assert "phone" in error["details"]
    assert client.get("/users/me", headers=headers).get_json()["phone"] == "+4915112345678"
    assert _counts(app) == before


def test_another_user_cannot_set_my_phone(client):
    victim = _sign_up(client, "fay")
    _sign_up(client, "gus")
    response = client.patch(
        f"/users/{victim['id']}", json={"phone": "+14155550123"}, headers=bearer(login(client, "gus"))
    )
    assert response.status_code in (403, 404)
    assert client.get("/users/me", headers=bearer(login(client, "fay"))).get_json()["phone"] is None
