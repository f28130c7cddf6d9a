"""The backbone's SQL: stamping, fan-out, leases, due deliveries, their outcomes, and the reads.

Both backends run the same statements. Where PostgreSQL needs more (the relay's advisory
lock, FOR UPDATE on the deliveries a drain takes, SKIP LOCKED on a lease another worker
holds), SQLite's one-writer-at-a-time already gives it, and SQLAlchemy leaves the clause out.
The owed-deliveries conditions are spelled exactly as the partial index's predicate
(tables.OWED), so the planner of either backend can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.infrastructure.tables import OWED, EventDelivery, EventSubscriber, OutboxEvent
from app.infrastructure.upsert import UPSERT_DIALECTS, dialect_insert
from app.vocabulary import DeliveryStatus

events = cast(Table, OutboxEvent.__table__)
deliveries = cast(Table, EventDelivery.__table__)
subscribers = cast(Table, EventSubscriber.__table__)

_OWED = text(f"event_deliveries.{OWED}")
# pg_advisory_xact_lock's key for "the relay": one relay at a time across every process.
RELAY_LOCK = 0x6372_6564_6974_7265  # "creditre"
ERROR_TEXT_LIMIT = 1000

_STAMP = text(
    """
    UPDATE outbox_events SET sequence = picked.base + picked.n
    FROM (
        SELECT id, row_number() OVER (ORDER BY id) AS n,
               (SELECT coalesce(max(sequence), 0) FROM outbox_events) AS base
        FROM outbox_events WHERE sequence IS NULL ORDER BY id LIMIT :limit
    ) AS picked
    WHERE outbox_events.id = picked.id
    RETURNING outbox_events.id, outbox_events.sequence, outbox_events.type
    """
)


# -- relay --------------------------------------------------------------------------------
def lock_relay(session: Session) -> None:
    """Wait for the relay lock, held until this transaction ends (SQLite: writers queue already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RELAY_LOCK})


def stamp(session: Session, limit: int) -> list[tuple[int, int, str]]:
    """Give up to `limit` committed, unstamped events the next sequences, in id order:
    (id, sequence, type) of each, by sequence. Under the relay lock only."""
    rows = session.execute(_STAMP, {"limit": limit}).all()
    return sorted(((row[0], row[1], row[2]) for row in rows), key=lambda row: row[1])


def insert_deliveries(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(deliveries), rows)


def ensure_subscribers(session: Session, names: Sequence[str], now: datetime) -> None:
    """A lease row per subscribing module (inserted once; concurrent inserts are fine)."""
    if not names:
        return
    rows = [{"name": name, "created_at": now} for name in names]
    if session.get_bind().dialect.name not in UPSERT_DIALECTS:
        known = set(session.scalars(select(subscribers.c.name).where(subscribers.c.name.in_(names))))
        missing = [row for row in rows if row["name"] not in known]
        if missing:
            session.execute(insert(subscribers), missing)
        return
    session.execute(dialect_insert(session, subscribers).values(rows).on_conflict_do_nothing(index_elements=["name"]))


def oldest_unstamped(session: Session) -> datetime | None:
    """When the oldest event still waiting for the relay was recorded (relay lag)."""
    return session.scalar(
        select(events.c.occurred_at).where(events.c.sequence.is_(None)).order_by(events.c.id).limit(1)
    )


# -- leases -------------------------------------------------------------------------------
def take_lease(session: Session, name: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take (or renew) `name`'s lease for owner, unless another owner holds an unexpired one.

    A lease row another worker's batch has locked is skipped, not waited for: a slow
    module ties up no other worker.
    """
    free = (
        select(subscribers.c.name)
        .where(
            subscribers.c.name == name,
            (subscribers.c.lease_owner.is_(None))
            | (subscribers.c.lease_owner == owner)
            | (subscribers.c.lease_until < now),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = session.execute(
        update(subscribers).where(subscribers.c.name == free).values(lease_owner=owner, lease_until=until)
    )
    return cast(Any, result).rowcount == 1


def release_lease(session: Session, name: str, owner: str) -> None:
    session.execute(
        update(subscribers)
        .where(subscribers.c.name == name, subscribers.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


# -- deliveries -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Due:
    """An owed delivery with its event's columns."""

    id: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    event: Any  # the outbox row (app.events.envelope.Event.from_row reads it)


_DUE_COLUMNS = (
    deliveries.c.id,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.next_attempt_at,
    events.c.event_id,
    events.c.sequence,
    events.c.type,
    events.c.occurred_at,
    events.c.actor_type,
    events.c.actor_id,
    events.c.request_id,
    events.c.remote_addr,
    events.c.target_type,
    events.c.target_id,
    events.c.data,
)


def owed(session: Session, name: str, limit: int) -> list[Due]:
    """The module's owed deliveries in sequence order, locked for this transaction
    (PostgreSQL: a worker that took over an expired lease waits here for the old batch)."""
    query = (
        select(*_DUE_COLUMNS)
        .join(events, events.c.id == deliveries.c.event_id)
        .where(deliveries.c.subscriber == name, _OWED)
        .order_by(deliveries.c.sequence)
        .limit(limit)
        .with_for_update(of=deliveries)
    )
    return [Due(row.id, row.status, row.attempts, row.next_attempt_at, row) for row in session.execute(query)]


def head(session: Session, name: str) -> tuple[str, datetime | None] | None:
    """(status, next_attempt_at) of the module's first owed delivery, or None when it owes none."""
    row = session.execute(
        select(deliveries.c.status, deliveries.c.next_attempt_at)
        .where(deliveries.c.subscriber == name, _OWED)
        .order_by(deliveries.c.sequence)
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def mark_done(session: Session, ids: list[int], now: datetime) -> int:
    """Mark the deliveries done; how many were still owed (fewer: another worker did some)."""
    if not ids:
        return 0
    result = session.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids), _OWED)
        .values(
            status=DeliveryStatus.DONE,
            attempts=deliveries.c.attempts + 1,
            last_error=None,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    return cast(Any, result).rowcount


def mark_failed(
    session: Session, delivery_id: int, status: str, attempts: int, error: str, next_at: datetime | None, now: datetime
) -> int:
    result = session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, _OWED)
        .values(
            status=status,
            attempts=attempts,
            last_error=error[:ERROR_TEXT_LIMIT],
            next_attempt_at=next_at,
            updated_at=now,
        )
    )
    return cast(Any, result).rowcount


def subscribers_owing(session: Session) -> list[str]:
    """Modules with at least one owed delivery."""
    return list(session.scalars(select(deliveries.c.subscriber).where(_OWED).distinct()))


# -- health and operations ----------------------------------------------------------------
def backlog(session: Session, name: str) -> tuple[int, datetime | None, int]:
    """(owed deliveries, when the oldest owed one's event occurred, dead deliveries)."""
    count = session.scalar(select(func.count()).select_from(deliveries).where(deliveries.c.subscriber == name, _OWED))
    oldest = session.scalar(
        select(events.c.occurred_at)
        .select_from(deliveries.join(events, events.c.id == deliveries.c.event_id))
        .where(deliveries.c.subscriber == name, _OWED)
        .order_by(deliveries.c.sequence)
        .limit(1)
    )
    dead = session.scalar(
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.status == DeliveryStatus.DEAD, deliveries.c.subscriber == name)
    )
    return count or 0, oldest, dead or 0


def feed(session: Session, after: int, type_prefix: str | None, limit: int) -> list[Any]:
    """Stamped events after a sequence, oldest first; type_prefix filters by type prefix."""
    query = select(events).where(events.c.sequence > after).order_by(events.c.sequence).limit(limit)
    if type_prefix:
        query = query.where(events.c.type.startswith(type_prefix, autoescape=True))
    return list(session.execute(query))


def delivery_page(
    session: Session, status: str | None, subscriber: str | None, before_id: int | None, limit: int
) -> list[Any]:
    """Deliveries newest first (by id), filtered, with their event's public id and type."""
    query = (
        select(deliveries, events.c.event_id.label("public_event_id"), events.c.type.label("event_type"))
        .join(events, events.c.id == deliveries.c.event_id)
        .order_by(deliveries.c.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(deliveries.c.status == status)
    if subscriber:
        query = query.where(deliveries.c.subscriber == subscriber)
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    return list(session.execute(query))


def delivery(session: Session, delivery_id: int, lock: bool = False) -> Any:
    query = select(deliveries).where(deliveries.c.id == delivery_id)
    return session.execute(query.with_for_update() if lock else query).first()


def requeue(session: Session, delivery_id: int, now: datetime) -> None:
    """A failed or dead delivery is owed again now, with a fresh set of attempts."""
    session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None, updated_at=now)
    )


def purge_done(session: Session, before: datetime) -> int:
    """Delete done deliveries last touched before `before`."""
    result = session.execute(
        delete(deliveries).where(and_(deliveries.c.status == DeliveryStatus.DONE, deliveries.c.updated_at < before))
    )
    return cast(Any, result).rowcount or 0
