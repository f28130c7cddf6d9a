"""Reading what the notification module wrote, for the tests."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from app.infrastructure.tables import OutboxEvent, utcnow
from app.infrastructure.tables_notifications import Notification, NotificationDelivery


def inbox(client, person, **query) -> list[dict]:
    response = client.get("/notifications", query_string=query, headers=person.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def deliveries(client, person, **query) -> list[dict]:
    response = client.get("/notifications/deliveries", query_string=query, headers=person.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def transfer(client, sender, recipient, amount: int, description: str | None = None) -> dict:
    body = {"from_user_id": sender.id, "to_user_id": recipient.id, "amount": amount, "description": description}
    response = client.post("/transactions", json=body, headers=sender.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def rows(app, table, **where) -> list:
    with app.container.database().unit_of_work(write=False) as uow:
        query = select(table)
        for name, value in where.items():
            query = query.where(getattr(table, name) == value)
        return list(uow.session.scalars(query))


def notifications_of(app, user_id: str, topic: str | None = None) -> list[Notification]:
    found = rows(app, Notification, user_id=user_id)
    return [n for n in found if topic is None or n.topic == topic]


def deliveries_of(app, user_id: str, channel: str | None = None) -> list[NotificationDelivery]:
    found = rows(app, NotificationDelivery, user_id=user_id)
    return [d for d in found if channel is None or d.channel == channel]


def failed_events(app) -> list[dict]:
    return [json.loads(e.data) for e in rows(app, OutboxEvent, type="notification.failed")]


def later(seconds: float = 7200):
    """A moment when every scheduled retry is due."""
    return utcnow() + timedelta(seconds=seconds)


def sender(app):
    return app.container.notification_sender()
