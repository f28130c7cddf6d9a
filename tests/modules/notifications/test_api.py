"""The inbox, read marks, preferences and the delivery log through the API, with the default
mail transport (file://: one .eml per message in the instance folder)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.events.envelope import Event
from app.infrastructure.tables import OutboxEvent
from app.infrastructure.tables_notifications import Notification, NotificationDelivery, NotificationPreference
from app.testing import assert_error, ledger_snapshot, login
from tests.modules.notifications.helpers import (
    deliveries,
    deliveries_of,
    inbox,
    notifications_of,
    rows,
    transfer,
)


def eml_files(settings) -> list:
    folder = settings.mail_url.removeprefix("file://")
    from pathlib import Path

    return sorted(Path(folder).glob("*.eml")) if Path(folder).exists() else []


def test_a_transfer_reaches_both_parties_in_the_inbox_and_the_recipient_by_email(
    credit_app, credit_client, credit_settings, people
):
    people.fund(people.alice, 500)
    tx = transfer(credit_client, people.alice, people.bob, 50, "lunch")

    (received,) = inbox(credit_client, people.bob)
    assert received["topic"] == "transfer_received" and received["read_at"] is None
    assert received["title"] == "You received 50 credits"
    assert "alice sent you 50 credits" in received["body"] and "lunch" in received["body"]
    assert received["data"]["transaction_id"] == tx["id"] and received["data"]["balance"] == 50
    assert [n["topic"] for n in inbox(credit_client, people.alice)] == ["transfer_sent", "deposit"]

    (mail,) = deliveries(credit_client, people.bob)
    assert mail["channel"] == "email" and mail["status"] == "sent" and mail["attempts"] == 1
    assert mail["to"] == "b***b@example.com" and mail["notification_id"] == received["id"]
    # alice: the deposit is mailed by default, the transfer she made is not
    assert [d["channel"] for d in deliveries(credit_client, people.alice)] == ["email"]
    texts = [path.read_text() for path in eml_files(credit_settings)]
    assert len(texts) == 2 and any("To: bob@example.com" in text for text in texts)


def test_read_marks(credit_client, people):
    people.fund(people.alice, 10)
    people.fund(people.alice, 20)
    first, second = inbox(credit_client, people.alice)
    response = credit_client.post(f"/notifications/{first['id']}/read", headers=people.alice.headers)
    assert response.status_code == 200 and response.get_json()["read_at"] is not None
    again = credit_client.post(f"/notifications/{first['id']}/read", headers=people.alice.headers).get_json()
    assert again["read_at"] == response.get_json()["read_at"]  # marking again changes nothing
    assert [n["id"] for n in inbox(credit_client, people.alice, unread="true")] == [second["id"]]
    # someone else's notification does not exist for bob
    assert_error(
        credit_client.post(f"/notifications/{second['id']}/read", headers=people.bob.headers), 404, "not_found"
    )
    assert_error(credit_client.post("/notifications/no-such-id/read", headers=people.alice.headers), 404, "not_found")
    assert credit_client.post("/notifications/read-all", headers=people.alice.headers).status_code == 204
    assert inbox(credit_client, people.alice, unread="true") == []
    assert len(inbox(credit_client, people.alice)) == 2


def test_the_inbox_pages_newest_first(credit_client, people):
    for amount in range(1, 6):
        people.fund(people.alice, amount)
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = credit_client.get("/notifications", query_string=query, headers=people.alice.headers).get_json()
        seen += [n["data"]["amount"] for n in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [5, 4, 3, 2, 1]


def test_an_event_handled_twice_gives_one_notification_and_one_message(
    credit_app, credit_client, credit_settings, people
):
    people.fund(people.alice, 500)
    transfer(credit_client, people.alice, people.bob, 50)
    module = credit_app.container.notification_module()
    database = credit_app.container.database()
    with database.unit_of_work(write=False) as uow:
        row = uow.session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "transaction.posted").order_by(OutboxEvent.id.desc())
        ).first()
    event = Event.from_row(row)
    before = (
        len(rows(credit_app, Notification)),
        len(rows(credit_app, NotificationDelivery)),
        len(eml_files(credit_settings)),
    )
    for _ in range(2):  # a redelivery, after commit, sends nothing again either
        with database.unit_of_work() as uow:
            module.handle_events(uow, [event])
            uow.commit()
    after = (
        len(rows(credit_app, Notification)),
        len(rows(credit_app, NotificationDelivery)),
        len(eml_files(credit_settings)),
    )
    assert after == before


def test_a_topic_switched_off_sends_nothing_more(credit_app, credit_client, credit_settings, people):
    people.fund(people.alice, 500)
    transfer(credit_client, people.alice, people.bob, 10)
    off = {"topics": {"transfer_received": {"in_app": False, "email": False}}}
    response = credit_client.patch("/notifications/preferences", json=off, headers=people.bob.headers)
    assert response.get_json()["topics"]["transfer_received"] == {"in_app": False, "email": False, "sms": False}
    mails = len(eml_files(credit_settings))
    transfer(credit_client, people.alice, people.bob, 20)
    assert len(notifications_of(credit_app, people.bob.id)) == 1
    assert len(deliveries_of(credit_app, people.bob.id)) == 1
    assert len(eml_files(credit_settings)) == mails


def test_preferences_default_and_merge(credit_client, people):
    defaults = credit_client.get("/notifications/preferences", headers=people.alice.headers).get_json()
    assert defaults["low_balance_threshold"] == 100
    assert defaults["topics"]["deposit"] == {"in_app": True, "email": True, "sms": False}
    assert defaults["topics"]["transfer_sent"] == {"in_app": True, "email": False, "sms": False}
    first = {"topics": {"transfer_sent": {"email": True}}, "low_balance_threshold": 25}
    credit_client.patch("/notifications/preferences", json=first, headers=people.alice.headers)
    merged = credit_client.patch(
        "/notifications/preferences", json={"topics": {"deposit": {"sms": True}}}, headers=people.alice.headers
    ).get_json()
    assert merged["topics"]["transfer_sent"] == {"in_app": True, "email": True, "sms": False}
    assert merged["topics"]["deposit"] == {"in_app": True, "email": True, "sms": True}
    assert merged["low_balance_threshold"] == 25
    assert credit_client.get("/notifications/preferences", headers=people.alice.headers).get_json() == merged
    # bob's are his own
    assert credit_client.get("/notifications/preferences", headers=people.bob.headers).get_json() == defaults


@pytest.mark.parametrize(
    "body, field",
    [
        ({"topics": {"security": {"email": False}}}, "topics.security.email"),
        ({"topics": {"nope": {"email": True}}}, "topics"),
        ({"topics": {"deposit": {"fax": True}}}, "topics"),
        ({"topics": {"deposit": {"email": "yes"}}}, "topics"),
        ({"topics": {"deposit": {"email": 1}}}, "topics"),
        ({"topics": {"deposit": {"email": None}}}, "topics"),
        ({"topics": ["deposit"]}, "topics"),
        ({"topics": None}, "topics"),
        ({"low_balance_threshold": -1}, "low_balance_threshold"),
        ({"low_balance_threshold": 1.5}, "low_balance_threshold"),
        ({"low_balance_threshold": "5"}, "low_balance_threshold"),
        ({"low_balance_threshold": True}, "low_balance_threshold"),
        ({"low_balance_threshold": 10**13}, "low_balance_threshold"),
        ({"extra": 1}, "extra"),
    ],
    ids=repr,
)
def test_bad_preferences_are_422_and_save_nothing(credit_app, credit_client, people, body, field):
    error = assert_error(
        credit_client.patch("/notifications/preferences", json=body, headers=people.alice.headers),
        422,
        "validation_error",
    )
    assert any(name == field or name.startswith(field + ".") for name in error["details"]), error
    assert all(isinstance(m, list) and all(isinstance(t, str) for t in m) for m in error["details"].values())
    assert rows(credit_app, NotificationPreference) == []


def test_preferences_need_a_token_and_a_json_object(credit_client, people):
    assert_error(credit_client.get("/notifications/preferences"), 401, "unauthorized")
    assert_error(credit_client.patch("/notifications/preferences", json={}), 401, "unauthorized")
    for raw in (b"[]", b"{", b'"x"'):
        response = credit_client.patch(
            "/notifications/preferences", data=raw, headers=people.alice.headers, content_type="application/json"
        )
        assert_error(response, 400, "bad_request")


def test_low_balance_fires_on_crossing_and_again_only_after_recovering(credit_app, credit_client, people):
    def withdraw(amount):
        body = {"user_id": people.alice.id, "amount": amount}
        assert credit_client.post("/wallet/withdraw", json=body, headers=people.alice.headers).status_code == 201

    people.fund(people.alice, 150)
    withdraw(60)  # 150 -> 90: crosses 100
    withdraw(10)  # 90 -> 80: still below, nothing
    people.fund(people.alice, 20)  # 100: back at the threshold
    withdraw(1)  # 100 -> 99: crosses again
    low = notifications_of(credit_app, people.alice.id, "low_balance")
    assert len(low) == 2
    assert sorted(n.title for n in low) == ["Your balance is low"] * 2
    mails = [d for d in deliveries_of(credit_app, people.alice.id, "email") if d.notification_id in {n.id for n in low}]
    assert len(mails) == 2 and all(d.status == "sent" for d in mails)


def test_security_email_goes_even_when_everything_else_is_off(credit_app, credit_client, people):
    everything_off = {
        "topics": {"security": {"in_app": False, "sms": False}, "deposit": {"email": False, "in_app": False}}
    }
    assert (
        credit_client.patch("/notifications/preferences", json=everything_off, headers=people.bob.headers).status_code
        == 200
    )
    change = {"password": "a-brand-new-password", "current_password": people.bob.password}
    assert credit_client.patch(f"/users/{people.bob.id}", json=change, headers=people.bob.headers).status_code == 200
    (notice,) = notifications_of(credit_app, people.bob.id, "security")
    assert "password was changed" in notice.body and "a-brand-new-password" not in notice.body + notice.data
    (mail,) = deliveries_of(credit_app, people.bob.id, "email")
    assert mail.status == "sent" and mail.notification_id == notice.id


def test_sms_without_a_phone_is_logged_as_suppressed(credit_client, people):
    credit_client.patch(
        "/notifications/preferences", json={"topics": {"deposit": {"sms": True}}}, headers=people.alice.headers
    )
    people.fund(people.alice, 10)
    sms = [d for d in deliveries(credit_client, people.alice) if d["channel"] == "sms"]
    assert sms == [
        {
            "id": sms[0]["id"],
            "notification_id": sms[0]["notification_id"],
            "channel": "sms",
            "to": None,
            "status": "suppressed",
            "attempts": 0,
            "last_error": "no phone number",
            "sent_at": None,
        }
    ]


def test_the_delivery_log_is_the_owners_or_an_admins(credit_client, people):
    people.fund(people.bob, 10)
    assert_error(
        credit_client.get(
            "/notifications/deliveries", query_string={"user_id": people.bob.id}, headers=people.alice.headers
        ),
        403,
        "forbidden",
    )
    as_admin = credit_client.get(
        "/notifications/deliveries", query_string={"user_id": people.bob.id}, headers=people.admin.headers
    )
    assert [d["to"] for d in as_admin.get_json()["items"]] == ["b***b@example.com"]
    unknown = credit_client.get(
        "/notifications/deliveries", query_string={"user_id": "no-such-user"}, headers=people.admin.headers
    )
    assert_error(unknown, 404, "not_found")
    assert_error(credit_client.get("/notifications/deliveries"), 401, "unauthorized")


@pytest.mark.parametrize(
    "path, query",
    [
        ("/notifications", {"limit": 0}),
        ("/notifications", {"limit": 201}),
        ("/notifications", {"unread": "yes"}),
        ("/notifications", {"cursor": "not-a-cursor"}),
        ("/notifications", {"cursor": "WzEsMl0"}),  # [1,2]: a forged cursor
        ("/notifications/deliveries", {"cursor": "WyJ4IiwieSJd"}),  # ["x","y"]
        ("/notifications/deliveries", {"limit": "many"}),
    ],
)
def test_bad_queries_are_422(credit_client, people, path, query):
    assert_error(credit_client.get(path, query_string=query, headers=people.alice.headers), 422, "validation_error")


def test_refused_requests_write_nothing(credit_app, credit_client, people):
    people.fund(people.alice, 10)
    before = (
        ledger_snapshot(credit_app),
        len(rows(credit_app, Notification)),
        len(rows(credit_app, NotificationPreference)),
    )
    credit_client.patch(
        "/notifications/preferences", json={"topics": {"security": {"email": False}}}, headers=people.alice.headers
    )
    credit_client.post("/notifications/nope/read", headers=people.bob.headers)
    after = (
        ledger_snapshot(credit_app),
        len(rows(credit_app, Notification)),
        len(rows(credit_app, NotificationPreference)),
    )
    assert after == before


@pytest.mark.credit_settings(modules_disabled="notification_module")
def test_without_the_module_the_core_works_and_its_routes_are_gone(credit_client, people):
    people.fund(people.alice, 100)
    transfer(credit_client, people.alice, people.bob, 40)
    assert credit_client.get(f"/wallet/balance/{people.bob.id}", headers=people.bob.headers).get_json()["balance"] == 40
    assert_error(credit_client.get("/notifications", headers=people.bob.headers), 404, "not_found")
    assert credit_client.get("/modules/status").get_json()["modules"]["notification_module"]["status"] == "disabled"
    assert credit_client.get("/health").get_json()["status"] == "healthy"


def test_an_auditor_reads_any_delivery_log_and_changes_nothing(credit_app, credit_client, people):
    people.fund(people.bob, 10)
    eve = people.add("eve")
    assert (
        credit_client.patch(f"/users/{eve.id}", json={"role": "auditor"}, headers=people.admin.headers).status_code
        == 200
    )
    headers = {"Authorization": f"Bearer {login(credit_client, 'eve')}"}
    response = credit_client.get("/notifications/deliveries", query_string={"user_id": people.bob.id}, headers=headers)
    assert response.status_code == 200 and len(response.get_json()["items"]) == 1
    before = len(rows(credit_app, NotificationPreference)), [n.read_at for n in rows(credit_app, Notification)]
    patch = {"topics": {"deposit": {"email": False}}}
    assert_error(credit_client.patch("/notifications/preferences", json=patch, headers=headers), 403, "forbidden")
    assert_error(credit_client.post("/notifications/read-all", headers=headers), 403, "forbidden")
    assert before == (
        len(rows(credit_app, NotificationPreference)),
        [n.read_at for n in rows(credit_app, Notification)],
    )
