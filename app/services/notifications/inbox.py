"""What the API offers a user: the inbox, read marks, preferences and the delivery log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select, update

from app.infrastructure.database import Database
from app.infrastructure.tables import User, utcnow
from app.infrastructure.tables_notifications import Notification, NotificationDelivery, NotificationPreference
from app.services.errors import NotFound
from app.services.notifications.masking import mask
from app.services.notifications.preferences import Preferences
from app.services.notifications.recorder import load_preferences
from app.services.pagination import cursor_text, decode_cursor, encode_cursor, invalid_cursor
from app.services.principal import Principal, require_owner_or_admin


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None


class NotificationService:
    def __init__(self, database: Database) -> None:
        self._db = database

    # -- the inbox ----------------------------------------------------------------------------
    def inbox(self, actor: Principal, unread: bool, limit: int, cursor: str | None) -> Page:
        n = Notification
        query = select(n).where(n.user_id == actor.user_id, n.in_app.is_(True))
        if unread:
            query = query.where(n.read_at.is_(None))
        rows = self._page(query, n, limit, cursor)
        return _paged(rows, limit, _notification)

    def mark_read(self, actor: Principal, notification_id: str) -> dict:
        _may_write(actor)
        with self._db.unit_of_work() as uow:
            row = uow.session.get(Notification, notification_id)
            if row is None or row.user_id != actor.user_id or not row.in_app:
                raise NotFound("no such notification")  # another user's: not even its existence
            if row.read_at is None:
                row.read_at = utcnow()
                uow.commit()
            return _notification(row)

    def mark_all_read(self, actor: Principal) -> None:
        _may_write(actor)
        with self._db.unit_of_work() as uow:
            uow.session.execute(
                update(Notification)
                .where(Notification.user_id == actor.user_id, Notification.read_at.is_(None))
                .values(read_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            uow.commit()

    # -- preferences --------------------------------------------------------------------------
    def preferences(self, actor: Principal) -> dict:
        with self._db.unit_of_work(write=False) as uow:
            return load_preferences(uow.session, [actor.user_id])[actor.user_id].public()

    def change_preferences(self, actor: Principal, patch: dict) -> dict:
        """Merge a PATCH into the caller's preferences (422 with nothing saved when refused)."""
        _may_write(actor)
        with self._db.unit_of_work() as uow:
            stored = uow.session.get(NotificationPreference, actor.user_id, with_for_update=True)
            current = Preferences.stored(stored.topics, stored.low_balance_threshold) if stored else Preferences()
            merged = current.merged(patch)
            if stored is None:
                stored = NotificationPreference(user_id=actor.user_id)
                uow.session.add(stored)
            stored.topics, stored.low_balance_threshold = merged.topics_json(), merged.threshold
            stored.updated_at = utcnow()
            uow.commit()
        return merged.public()

    # -- the delivery log ---------------------------------------------------------------------
    def deliveries(self, actor: Principal, user_id: str | None, limit: int, cursor: str | None) -> Page:
        owner = user_id or actor.user_id
        require_owner_or_admin(actor, owner, "you may only read your own deliveries", read=True)
        if owner != actor.user_id:
            with self._db.unit_of_work(write=False) as uow:
                if uow.session.get(User, owner) is None:
                    raise NotFound("no such user")
        d = NotificationDelivery
        rows = self._page(select(d).where(d.user_id == owner), d, limit, cursor)
        return _paged(rows, limit, _delivery)

    def _page(self, query, table, limit: int, cursor: str | None) -> list:
        after = decode_cursor(cursor, 2)
        if after:
            created_at, last_id = _parse_time(after[0]), cursor_text(after[1])
            query = query.where(
                or_(table.created_at < created_at, and_(table.created_at == created_at, table.id < last_id))
            )
        query = query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
        with self._db.unit_of_work(write=False) as uow:
            return list(uow.session.scalars(query))


def _may_write(actor: Principal) -> None:
    """Its own notifications are the caller's to change, unless it is read-only (an auditor
    changes nothing but its own password: API.md)."""
    require_owner_or_admin(actor, actor.user_id, "an auditor may change nothing but its own password")


def _paged(rows: list, limit: int, render) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
    return Page([render(row) for row in rows], cursor)


def _notification(row: Notification) -> dict:
    return {
        "id": row.id,
        "topic": row.topic,
        "title": row.title,
        "body": row.body,
        "data": json.loads(row.data),
        "created_at": row.created_at,
        "read_at": row.read_at,
    }


def _delivery(row: NotificationDelivery) -> dict:
    return {
        "id": row.id,
        "notification_id": row.notification_id,
        "channel": row.channel,
        "to": mask(row.channel, row.recipient),
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "sent_at": row.sent_at,
    }


def _parse_time(value) -> datetime:
    try:
        parsed = datetime.fromisoformat(cursor_text(value))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid_cursor() from None
