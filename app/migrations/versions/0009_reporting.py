"""reporting_module's aggregates: counted events, totals per UTC day and quarter hour, activity

Tables as app/infrastructure/tables_reporting.py declares them. Transactions and users
that exist already are folded in here, from the ledger itself, and the events that
announced them are marked counted: a delivery of one of them later (an event not yet
relayed when this ran) counts nothing twice.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 00:00:00
"""

from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COUNTED_TYPES = ("transaction.posted", "user.created")


def upgrade() -> None:
    counted = op.create_table(
        "report_counted_events",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_report_counted_events"),
    )
    totals = op.create_table(
        "report_totals",
        sa.Column("span", sa.String(8), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("span IN ('day', 'quarter')", name="ck_report_totals_span"),
        sa.PrimaryKeyConstraint("span", "start", "metric", name="pk_report_totals"),
    )
    activity = op.create_table(
        "report_activity",
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("early", sa.BigInteger(), nullable=False),
        sa.Column("late", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "user_id", name="pk_report_activity"),
    )
    _backfill(counted, totals, activity)


def _utc(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bind(value: datetime, dialect: str):
    return value.replace(tzinfo=None) if dialect == "sqlite" else value


def _backfill(counted, totals, activity) -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    sums: dict[tuple[str, datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    masks: dict[tuple[datetime, str], list[int]] = defaultdict(lambda: [0, 0])

    def add(at: datetime, metric: str, amount: int) -> None:
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        quarter = at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)
        for key in (("day", day, metric), ("quarter", quarter, metric)):
            sums[key][0] += 1
            sums[key][1] += amount

    rows = bind.execute(sa.text("SELECT type, amount, from_user_id, to_user_id, created_at FROM transactions"))
    for type_, amount, from_user, to_user, created_at in rows:
        at = _utc(created_at)
        add(at, type_, amount)
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        quarter = (at.hour * 60 + at.minute) // 15
        for user_id in {from_user, to_user} - {None}:
            mask = masks[(day, user_id)]
            mask[quarter // 48] |= 1 << (quarter % 48)
    for (created_at,) in bind.execute(sa.text("SELECT created_at FROM users")):
        add(_utc(created_at), "new_users", 0)
    for day, _ in masks:
        sums[("day", day, "active_users")][0] += 1
    if sums:
        op.bulk_insert(
            totals,
            [
                {"span": span, "start": _bind(start, dialect), "metric": metric, "count": count, "amount": amount}
                for (span, start, metric), (count, amount) in sums.items()
            ],
        )
    if masks:
        op.bulk_insert(
            activity,
            [
                {"day": _bind(day, dialect), "user_id": user_id, "early": early, "late": late}
                for (day, user_id), (early, late) in masks.items()
            ],
        )
    now = _bind(datetime.now(UTC), dialect)
    events = bind.execute(
        sa.text("SELECT event_id FROM outbox_events WHERE type IN ('transaction.posted', 'user.created')")
    )
    ids = [{"event_id": event_id, "counted_at": now} for (event_id,) in events]
    if ids:
        op.bulk_insert(counted, ids)


def downgrade() -> None:
    op.drop_table("report_activity")
    op.drop_table("report_totals")
    op.drop_table("report_counted_events")
