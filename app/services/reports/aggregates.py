"""The write side of reports: reporting_module's event handler folds each `transaction.posted`
and `user.created` into the aggregates (app/infrastructure/tables_reporting.py), once.

Once per event however it is delivered: the handler first inserts the event's id under a
primary key with ON CONFLICT DO NOTHING, and counts only if that inserted a row. A
redelivery finds the id taken; a second worker racing with the first waits on the first's
uncommitted row (PostgreSQL) or on the write lock (SQLite) and then finds it taken. The
upserts are additive (count + 1) or idempotent (mask OR bits) and never read-modify-write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.infrastructure.tables import utcnow
from app.infrastructure.tables_reporting import DAY, QUARTER, ReportActivity, ReportCountedEvent, ReportTotal
from app.services.reports.periods import floor_day, floor_quarter, mask_bits, quarter_of_day
from app.vocabulary import EventType

NEW_USERS, ACTIVE_USERS = "new_users", "active_users"

_counted, _totals, _activity = (
    cast(Table, model.__table__) for model in (ReportCountedEvent, ReportTotal, ReportActivity)
)


def _insert(session: Session, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite alike)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class ReportAggregator:
    """Folds events into the aggregates; `handle` is reporting_module's handle_event."""

    def handle(self, session: Session, event: Any) -> None:
        if event.type == EventType.TRANSACTION_POSTED:
            transaction = event.data["transaction"]
            if not self._first_time(session, event.id):
                return
            at = datetime.fromisoformat(transaction["created_at"])
            self._add(session, at, transaction["type"], transaction["amount"])
            parties = {transaction.get("from_user_id"), transaction.get("to_user_id")} - {None}
            for user_id in sorted(parties):
                self._mark_active(session, at, user_id)
        elif event.type == EventType.USER_CREATED:
            if not self._first_time(session, event.id):
                return
            self._add(session, datetime.fromisoformat(event.data["user"]["created_at"]), NEW_USERS, 0)

    @staticmethod
    def _first_time(session: Session, event_id: str) -> bool:
        claim = _insert(session, _counted).values(event_id=event_id, counted_at=utcnow())
        claimed = claim.on_conflict_do_nothing(index_elements=["event_id"]).returning(_counted.c.event_id)
        return session.execute(claimed).first() is not None  # RETURNING: rowcount is unreliable in a pipeline

    @staticmethod
    def _add(session: Session, at: datetime, metric: str, amount: int, spans: tuple[str, ...] = (DAY, QUARTER)) -> None:
        for span in spans:
            start = floor_day(at) if span == DAY else floor_quarter(at)
            statement = _insert(session, _totals).values(span=span, start=start, metric=metric, count=1, amount=amount)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["span", "start", "metric"],
                    set_={"count": _totals.c.count + 1, "amount": _totals.c.amount + statement.excluded.amount},
                )
            )

    def _mark_active(self, session: Session, at: datetime, user_id: str) -> None:
        quarter = quarter_of_day(at)
        early, late = mask_bits(quarter, quarter + 1)
        day = floor_day(at)
        row = {"day": day, "user_id": user_id, "early": early, "late": late}
        claim = _insert(session, _activity).values(**row).on_conflict_do_nothing(index_elements=["day", "user_id"])
        if (
            session.execute(claim.returning(_activity.c.user_id)).first() is not None
        ):  # the user's first transaction of this UTC day
            self._add(session, day, ACTIVE_USERS, 0, spans=(DAY,))
            return
        session.execute(
            _activity.update()
            .where(_activity.c.day == day, _activity.c.user_id == user_id)
            .values(early=_activity.c.early.op("|")(early), late=_activity.c.late.op("|")(late))
        )
