"""reporting_module's tables: the aggregates its event handler maintains (migration 0009).

Totals are kept at two grains in UTC: whole days, and quarter hours. A summary's bucket
boundaries in any IANA zone fall on quarter hours (every UTC offset in use is a multiple of
15 minutes), so a bucket is its whole UTC days plus or minus a few quarter-hour rows at each
edge: its cost depends on the number of buckets, never on how many transactions they hold.
Who was active is kept per (UTC day, user) with a 96-bit mask of the quarter hours in which
the user took part in a transaction (two 48-bit halves), plus a per-day count of distinct
active users for the common case of days that start at UTC midnight.

Any other bucket (a day in a zone off UTC, a week, a month) costs more: quarter-hour rows at
its edges, and its distinct active users counted from the activity rows, in proportion to
how many there are. It is kept once added up (migration 0012) with the sum of the versions
of the UTC days it overlaps; the handler raises the version of each day whose aggregates it
changes, so a kept bucket is used only while none of its days has changed
(app/services/reports/kept.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.infrastructure.tables import Base, UTCDateTime, utcnow

DAY, QUARTER = "day", "quarter"


class ReportCountedEvent(Base):
    """An event already counted: the handler inserts here first, so a redelivered or raced
    event finds its id taken and counts nothing."""

    __tablename__ = "report_counted_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    counted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportTotal(Base):
    """Count and amount of one metric (a transaction type, `new_users`, or, per day only,
    `active_users`) in one UTC day or quarter hour starting at `start`."""

    __tablename__ = "report_totals"
    __table_args__ = (CheckConstraint(f"span IN ('{DAY}', '{QUARTER}')", name="span"),)

    span: Mapped[str] = mapped_column(String(8), primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportActivity(Base):
    """A user took part in a transaction on this UTC day; in which quarter hours: bit q of
    `early` for q < 48 (before noon), bit q - 48 of `late` otherwise."""

    __tablename__ = "report_activity"

    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    early: Mapped[int] = mapped_column(BigInteger, default=0)
    late: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportDayVersion(Base):
    """How many of the handler's transactions have changed this UTC day's aggregates."""

    __tablename__ = "report_day_versions"

    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportKeptBucket(Base):
    """A summary bucket [start, until) as added up when the versions of the UTC days it
    overlaps summed to `stamp` (versions only grow, so an equal sum means no day changed);
    `body` is its JSON without start and end."""

    __tablename__ = "report_kept_buckets"

    start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    stamp: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    kept_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
