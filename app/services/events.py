"""Reading the event feed and operating deliveries (admin): the use cases behind /events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.events import store
from app.events.backbone import EventBackbone
from app.events.envelope import Event
from app.infrastructure.database import Database
from app.infrastructure.tables import utcnow
from app.services.errors import AlreadyDelivered, Forbidden, NotFound
from app.services.pagination import cursor_id, decode_cursor, encode_cursor
from app.services.principal import Principal
from app.vocabulary import DeliveryStatus, ascii_int


@dataclass(frozen=True)
class FeedPage:
    items: list[dict[str, Any]]
    last_sequence: int


@dataclass(frozen=True)
class DeliveryPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


class EventFeed:
    def __init__(self, database: Database, backbone: EventBackbone) -> None:
        self._db = database
        self._backbone = backbone

    def types(self) -> list[dict[str, str]]:
        return [{"type": event_type, "description": text} for event_type, text in self._backbone.catalog.types()]

    def events(self, actor: Principal, after: int, type_prefix: str | None, limit: int) -> FeedPage:
        """Relayed events after a sequence, oldest first; `last_sequence` is where to go on from."""
        if not actor.may_act_for(read=True):
            raise Forbidden("reading the event feed needs an admin or an auditor")
        with self._db.unit_of_work(write=False) as uow:
            rows = store.feed(uow.session, after, type_prefix, limit)
        items = [Event.from_row(row).public() for row in rows]
        return FeedPage(items, items[-1]["sequence"] if items else after)

    def deliveries(
        self, actor: Principal, status: str | None, subscriber: str | None, limit: int, cursor: str | None
    ) -> DeliveryPage:
        if not actor.may_act_for():
            raise Forbidden("only an admin may list event deliveries")
        after = decode_cursor(cursor, 1)
        before_id = cursor_id(after[0]) if after else None
        with self._db.unit_of_work(write=False) as uow:
            rows = store.delivery_page(uow.session, status, subscriber, before_id, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return DeliveryPage([_delivery(row) for row in rows], encode_cursor(rows[-1].id) if more and rows else None)

    def retry(self, actor: Principal, delivery_id: str) -> dict[str, Any]:
        """A failed or dead delivery is owed again now (a fresh set of attempts), and its module woken."""
        if not actor.may_act_for():
            raise Forbidden("only an admin may retry an event delivery")
        number = ascii_int(delivery_id)
        if number is None:
            raise NotFound("no such delivery")
        with self._db.unit_of_work() as uow:
            row = store.delivery(uow.session, number, lock=True)
            if row is None:
                raise NotFound("no such delivery")
            if row.status == DeliveryStatus.DONE:
                raise AlreadyDelivered()
            if row.status != DeliveryStatus.PENDING:
                store.requeue(uow.session, row.id, utcnow())
            subscriber = row.subscriber
            uow.commit()
        self._backbone.wake(subscriber)
        with self._db.unit_of_work(write=False) as uow:
            rows = store.delivery_page(uow.session, None, None, int(delivery_id) + 1, 1)
        return _delivery(rows[0])


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "event_id": row.public_event_id,
        "event_type": row.event_type,
        "subscriber": row.subscriber,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": row.next_attempt_at,
    }
