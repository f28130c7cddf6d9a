"""The write side of reports: reporting_module's event handler folds each `transaction.posted`
and `user.created` into the aggregates (app/infrastructure/tables_reporting.py), once.

Once per event however it is delivered: the handler first inserts the events' ids under a
primary key with ON CONFLICT DO NOTHING, and counts only those that inserted a row. A
redelivery finds the id taken; a second worker racing with the first waits on the first's
uncommitted row (PostgreSQL) or on the write lock (SQLite) and then finds it taken. The
upserts are additive (count + n) or idempotent (mask OR bits) and never read-modify-write.
Changing a UTC day's aggregates also raises that day's version, which retires every summary
bucket kept for a span overlapping it (app/services/reports/kept.py).

A batch of events is summed in memory first, so it costs a handful of statements (claim,
totals, activity), each with many rows, whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from app.infrastructure.tables import utcnow
from app.infrastructure.tables_reporting import (
    DAY,
    QUARTER,
    ReportActivity,
    ReportCountedEvent,
    ReportDayVersion,
    ReportTotal,
)
from app.infrastructure.upsert import dialect_insert
from app.services.reports.periods import floor_day, floor_quarter, mask_bits, quarter_of_day
from app.vocabulary import EventType

NEW_USERS, ACTIVE_USERS = "new_users", "active_users"

_counted, _totals, _activity, _versions = (
    cast(Table, model.__table__) for model in (ReportCountedEvent, ReportTotal, ReportActivity, ReportDayVersion)
)


class ReportAggregator:
    """Folds events into the aggregates; `handle` is reporting_module's handle_events."""

    def handle(self, session: Session, events: list[Any]) -> None:
        relevant = [e for e in events if e.type in (EventType.TRANSACTION_POSTED, EventType.USER_CREATED)]
        first_time = self._first_time(session, [e.id for e in relevant])
        totals: dict[tuple[str, datetime, str], list[int]] = defaultdict(lambda: [0, 0])
        activity: dict[tuple[datetime, str], list[int]] = defaultdict(lambda: [0, 0])
        for event in relevant:
            if event.id not in first_time:
                continue
            if event.type == EventType.TRANSACTION_POSTED:
                transaction = event.data["transaction"]
                at = datetime.fromisoformat(transaction["created_at"])
                _add(totals, at, transaction["type"], transaction["amount"])
                early, late = mask_bits(quarter_of_day(at), quarter_of_day(at) + 1)
                for user_id in {transaction.get("from_user_id"), transaction.get("to_user_id")} - {None}:
                    masks = activity[(floor_day(at), user_id)]
                    masks[0] |= early
                    masks[1] |= late
            else:
                _add(totals, datetime.fromisoformat(event.data["user"]["created_at"]), NEW_USERS, 0)
        for day in self._mark_active(session, activity):  # each user's first transaction of a UTC day
            _add(totals, day, ACTIVE_USERS, 0, spans=(DAY,))
        self._upsert_totals(session, totals)
        self._bump_versions(session, sorted({start for span, start, _metric in totals if span == DAY}))

    @staticmethod
    def _first_time(session: Session, event_ids: list[str]) -> set[str]:
        """Claim the events' ids; those not claimed before (RETURNING: rowcount is unreliable
        in a pipeline)."""
        if not event_ids:
            return set()
        now = utcnow()
        claim = dialect_insert(session, _counted).on_conflict_do_nothing(index_elements=["event_id"])
        rows = [{"event_id": i, "counted_at": now} for i in event_ids]
        return set(session.scalars(claim.returning(_counted.c.event_id), rows))

    @staticmethod
    def _mark_active(session: Session, activity: dict[tuple[datetime, str], list[int]]) -> list[datetime]:
        """Record who was active in which quarters; the day of each (day, user) seen for the first time."""
        if not activity:
            return []
        rows = [
            {"day": day, "user_id": user_id, "early": early, "late": late}
            for (day, user_id), (early, late) in sorted(activity.items())
        ]
        insert_new = dialect_insert(session, _activity).on_conflict_do_nothing(index_elements=["day", "user_id"])
        inserted = session.execute(insert_new.returning(_activity.c.day, _activity.c.user_id), rows)
        new = {(row.day, row.user_id) for row in inserted}
        known = [row for row in rows if (row["day"], row["user_id"]) not in new]
        if known:
            statement = dialect_insert(session, _activity)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["day", "user_id"],
                    set_={
                        "early": _activity.c.early.op("|")(statement.excluded.early),
                        "late": _activity.c.late.op("|")(statement.excluded.late),
                    },
                ).returning(_activity.c.day),  # RETURNING: SQLAlchemy sends the rows as one statement
                known,
            )
        return [day for day, _user in new]

    @staticmethod
    def _bump_versions(session: Session, days: list[datetime]) -> None:
        """Raise the version of each day, in the transaction that changed its aggregates: a
        kept summary bucket (app/services/reports/kept.py) is stale as soon as the change is visible."""
        if not days:
            return
        statement = dialect_insert(session, _versions)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["day"], set_={"version": _versions.c.version + 1}
            ).returning(_versions.c.day),  # RETURNING: SQLAlchemy sends the rows as one statement
            [{"day": day, "version": 1} for day in days],
        )

    @staticmethod
    def _upsert_totals(session: Session, totals: dict[tuple[str, datetime, str], list[int]]) -> None:
        if not totals:
            return
        rows = [
            {"span": span, "start": start, "metric": metric, "count": count, "amount": amount}
            for (span, start, metric), (count, amount) in sorted(totals.items())
        ]
        statement = dialect_insert(session, _totals)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["span", "start", "metric"],
                set_={
                    "count": _totals.c.count + statement.excluded.count,
                    "amount": _totals.c.amount + statement.excluded.amount,
                },
            ).returning(_totals.c.span),  # RETURNING: SQLAlchemy sends the rows as one statement
            rows,
        )


def _add(
    totals: dict[tuple[str, datetime, str], list[int]],
    at: datetime,
    metric: str,
    amount: int,
    spans: tuple[str, ...] = (DAY, QUARTER),
) -> None:
    for span in spans:
        start = floor_day(at) if span == DAY else floor_quarter(at)
        total = totals[(span, start, metric)]
        total[0] += 1
        total[1] += amount
