"""The event handler's half: turn an event into inbox rows and queued deliveries, in the
handler's transaction, and nothing else (no I/O: the sender sends after commit).

Idempotent by construction: ids are derived from (event, user, topic[, channel]) and rows
are inserted with ON CONFLICT DO NOTHING against the unique constraints, so an event
delivered twice, or handled by two workers at once, leaves one of each.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.infrastructure.tables import User, utcnow
from app.infrastructure.tables_notifications import Notification, NotificationDelivery, NotificationPreference
from app.infrastructure.upsert import insert_ignoring_duplicates
from app.services.notifications.compose import Intent, intents
from app.services.notifications.preferences import Preferences
from app.services.notifications.render import Renderer
from app.vocabulary import NotificationChannel, NotificationStatus

Channel, Status = NotificationChannel, NotificationStatus
_NAMESPACE = uuid.UUID("6f1c1c3e-5a0e-4c55-9d5e-0b7f3f1a2c41")  # ids of notifications and deliveries
SENT_CHANNELS = (Channel.EMAIL, Channel.SMS)


def notification_id(event_id: str, user_id: str, topic: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{event_id}/{user_id}/{topic}"))


def delivery_id(notification: str, channel: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{notification}/{channel}"))


def load_preferences(session: Session, user_ids: list[str]) -> dict[str, Preferences]:
    rows = session.execute(
        select(
            NotificationPreference.user_id, NotificationPreference.topics, NotificationPreference.low_balance_threshold
        ).where(NotificationPreference.user_id.in_(user_ids))
    ).all()
    found = {user_id: Preferences.stored(topics, threshold) for user_id, topics, threshold in rows}
    return {user_id: found.get(user_id, Preferences()) for user_id in user_ids}


@dataclass(frozen=True)
class Recorded:
    notifications: int
    queued: list[str]  # ids of deliveries to send after commit


class Recorder:
    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    def record(self, session: Session, events: list[tuple[str, str, dict[str, Any]]]) -> Recorded:
        """Rows for a batch of (event id, type, data): the preferences and the people read once,
        the notifications and the deliveries written in one INSERT each."""
        concerned = sorted(
            {user_id for _, event_type, data in events for user_id in _concerned_users(event_type, data)}
        )
        if not concerned:
            return Recorded(0, [])
        preferences = load_preferences(session, concerned)
        found = [
            (event_id, intent)
            for event_id, event_type, data in events
            for intent in intents(event_type, data, lambda user_id: preferences[user_id].low_balance_threshold)
        ]
        if not found:
            return Recorded(0, [])
        people = _people(
            session, {i.user_id for _, i in found} | {i.counterparty_id for _, i in found if i.counterparty_id}
        )
        now = utcnow()
        notifications, deliveries = [], []
        for event_id, intent in found:
            choice = preferences.get(intent.user_id) or Preferences()
            wanted = [ch for ch in Channel if choice.wants(intent.topic, ch)]
            user = people.get(intent.user_id)
            if not wanted or user is None:
                continue
            notification = self._notification(event_id, intent, people, now, in_app=Channel.IN_APP in wanted)
            notifications.append(notification)
            for channel in SENT_CHANNELS:
                if channel in wanted:
                    deliveries.append(_delivery(notification["id"], intent.user_id, channel, user, now))
        insert_ignoring_duplicates(session, Notification.__table__, notifications)  # type: ignore[arg-type]
        insert_ignoring_duplicates(session, NotificationDelivery.__table__, deliveries)  # type: ignore[arg-type]
        queued = [row["id"] for row in deliveries if row["status"] == Status.QUEUED]
        return Recorded(len(notifications), queued)

    def _notification(self, event_id: str, intent: Intent, people: dict, now, in_app: bool) -> dict[str, Any]:
        data = dict(intent.data)
        if intent.counterparty_id:
            other = people.get(intent.counterparty_id)
            data["counterparty"] = other.username if other else None
            data["counterparty_id"] = intent.counterparty_id
        title, body = self.renderer.inbox(intent.topic, {**data, "username": people[intent.user_id].username})
        return {
            "id": notification_id(event_id, intent.user_id, intent.topic),
            "user_id": intent.user_id,
            "event_id": event_id,
            "topic": intent.topic.value,
            "title": title,
            "body": body,
            "data": json.dumps(data, separators=(",", ":")),
            "in_app": in_app,
            "created_at": now,
            "read_at": None,
        }


def _concerned_users(event_type: str, data: dict[str, Any]) -> list[str]:
    if "transaction" in data:
        tx = data["transaction"]
        return [u for u in (tx.get("from_user_id"), tx.get("to_user_id")) if u]
    user = data.get("user") or {}
    return [user["id"]] if user.get("id") else []


def _people(session: Session, user_ids: set[str]) -> dict[str, Any]:
    rows = session.execute(
        select(User.id, User.username, User.email, User.phone).where(User.id.in_(sorted(user_ids)))
    ).all()
    return {row.id: row for row in rows}


def _delivery(notification: str, user_id: str, channel: str, user, now) -> dict[str, Any]:
    recipient = user.email if channel == Channel.EMAIL else user.phone
    status, error = Status.QUEUED, None
    if not recipient:  # wanted, but there is nowhere to send it: logged, not attempted
        status, error = Status.SUPPRESSED, f"no {'phone number' if channel == Channel.SMS else 'address'}"
    return {
        "id": delivery_id(notification, channel),
        "notification_id": notification,
        "user_id": user_id,
        "channel": channel.value if hasattr(channel, "value") else channel,
        "recipient": recipient,
        "status": status.value,
        "attempts": 0,
        "last_error": error,
        "next_attempt_at": now if status == Status.QUEUED else None,
        "claimed_by": None,
        "claimed_until": None,
        "message_id": None,
        "sent_at": None,
        "created_at": now,
    }
