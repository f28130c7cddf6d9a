"""The read side of reports: summaries from the aggregates; balances, trial balance, top users
and statements from the ledger itself (entries carry balance_after)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from app.infrastructure.database import Database
from app.infrastructure.posting import balance_as_of
from app.infrastructure.tables import ISSUANCE_ACCOUNT, REDEMPTION_ACCOUNT, Account, LedgerEntry, Transaction, User
from app.infrastructure.tables_reporting import DAY, QUARTER, ReportActivity, ReportTotal
from app.services.errors import NotFound
from app.services.principal import Principal, require_owner_or_admin
from app.services.reports import kept
from app.services.reports.aggregates import ACTIVE_USERS, NEW_USERS
from app.services.reports.periods import (
    DAY as ONE_DAY,
)
from app.services.reports.periods import (
    QUARTER as ONE_QUARTER,
)
from app.services.reports.periods import (
    Bucket,
    Interval,
    buckets,
    floor_day,
    is_one_utc_day,
    mask_bits,
    pieces,
    quarter_of_day,
)
from app.vocabulary import TransactionType

# The summary's keys for each transaction type.
TYPE_KEYS = {
    TransactionType.DEPOSIT: "deposits",
    TransactionType.WITHDRAWAL: "withdrawals",
    TransactionType.TRANSFER: "transfers",
    TransactionType.REVERSAL: "reversals",
}
_RANGES_PER_QUERY = 200  # quarter-hour ranges OR-ed into one query
_PARTS_PER_QUERY = 300  # UNION ALL parts in one query (SQLite allows 500)
_activity = ReportActivity.__table__


def _slices(bucket: Bucket) -> list[Any]:
    """Conditions on report_activity selecting the rows active in bucket: its whole UTC days
    as one range, and each partial day by the overlap of its quarter-hour masks."""
    head_day, tail_day = floor_day(bucket.start), floor_day(bucket.end)
    first_full = bucket.start if bucket.start == head_day else head_day + ONE_DAY
    slices: list[Any] = []
    if first_full < tail_day:
        slices.append(and_(_activity.c.day >= first_full, _activity.c.day < tail_day))
    edges = []
    if bucket.start != head_day:
        last = 96 if bucket.end >= head_day + ONE_DAY else quarter_of_day(bucket.end)
        edges.append((head_day, quarter_of_day(bucket.start), last))
    if bucket.end != tail_day and not (bucket.start != head_day and tail_day == head_day):
        edges.append((tail_day, 0, quarter_of_day(bucket.end)))
    for day, first, last in edges:
        early, late = mask_bits(first, last)
        overlap = or_(_activity.c.early.op("&")(early) != 0, _activity.c.late.op("&")(late) != 0)
        slices.append(and_(_activity.c.day == day, overlap))
    return slices


@dataclass(frozen=True)
class StatementLine:
    transaction_id: str
    type: str
    amount: int
    balance_after: int
    counterparty_id: str | None
    created_at: datetime


class ReportService:
    def __init__(self, database: Database) -> None:
        self._db = database

    # -- summary: from the aggregates ------------------------------------------------------
    def summary(self, start: datetime, end: datetime, interval: Interval, tz: ZoneInfo) -> list[dict[str, Any]]:
        """One dict per calendar bucket of [start, end) in tz; start and end quarter-aligned UTC.
        Buckets that are not one UTC day are kept between requests (app/services/reports/kept.py)."""
        spans = buckets(start, end, interval, tz)
        with self._db.unit_of_work(write=False) as uow:
            current, stamps = kept.read(uow.session, spans)
            todo = {n: bucket for n, bucket in enumerate(spans) if n not in current}
            days, quarters = self._totals(uow.session, list(todo.values()))
            active = self._active_users(uow.session, todo, days)
        made = {n: self._bucket(bucket, days, quarters, active[n]) for n, bucket in todo.items()}
        kept.keep(self._db, [(made[n], stamp) for n, stamp in stamps.items()])
        return [current[n] if n in current else made[n] for n in range(len(spans))]

    @staticmethod
    def _bucket(bucket: Bucket, days: dict, quarters: dict, active_users: int) -> dict[str, Any]:
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        split = pieces(bucket.start, bucket.end)

        def add(rows: dict, key: datetime, sign: int) -> None:
            for metric, (count, amount) in rows.get(key, {}).items():
                totals[metric][0] += sign * count
                totals[metric][1] += sign * amount

        for day in split.days:
            add(days, day, 1)
        for ranges, sign in ((split.plus, 1), (split.minus, -1)):
            for first, last in ranges:
                t = first
                while t < last:
                    add(quarters, t, sign)
                    t += ONE_QUARTER
        out: dict[str, Any] = {"start": bucket.start, "end": bucket.end}
        for type_, key in TYPE_KEYS.items():
            count, amount = totals.get(type_, [0, 0])
            out[key] = {"count": count, "amount": amount}
        out["new_users"] = totals.get(NEW_USERS, [0, 0])[0]
        out["active_users"] = active_users
        return out

    @staticmethod
    def _totals(session: Session, spans: list[Bucket]) -> tuple[dict, dict]:
        """{day: {metric: (count, amount)}} for the days the buckets touch, and the same for
        the quarter hours their edges need."""
        days: dict[datetime, dict[str, tuple[int, int]]] = defaultdict(dict)
        quarters: dict[datetime, dict[str, tuple[int, int]]] = defaultdict(dict)
        if not spans:
            return days, quarters
        first_day, end = floor_day(spans[0].start), spans[-1].end
        rows = session.execute(
            select(ReportTotal.start, ReportTotal.metric, ReportTotal.count, ReportTotal.amount).where(
                ReportTotal.span == DAY, ReportTotal.start >= first_day, ReportTotal.start < end
            )
        )
        for start, metric, count, amount in rows:
            days[start][metric] = (count, amount)
        ranges = sorted(
            {r for bucket in spans for split in [pieces(bucket.start, bucket.end)] for r in split.plus + split.minus}
        )
        for n in range(0, len(ranges), _RANGES_PER_QUERY):
            chunk = ranges[n : n + _RANGES_PER_QUERY]
            rows = session.execute(
                select(ReportTotal.start, ReportTotal.metric, ReportTotal.count, ReportTotal.amount).where(
                    ReportTotal.span == QUARTER,
                    or_(*(and_(ReportTotal.start >= first, ReportTotal.start < last) for first, last in chunk)),
                )
            )
            for start, metric, count, amount in rows:
                quarters[start][metric] = (count, amount)
        return days, quarters

    @staticmethod
    def _active_users(session: Session, spans: dict[int, Bucket], days: dict) -> dict[int, int]:
        """Distinct users who took part in a transaction, per bucket (by its index). A bucket
        that is exactly one UTC day reads that day's count; any other counts, in the database,
        the distinct users of the (day, user) activity rows of its whole UTC days and, at its
        edges, of the partial days whose quarter-hour masks overlap it."""
        counts: dict[int, int] = {}
        chunks: list[list[Any]] = [[]]
        for n, bucket in spans.items():
            if is_one_utc_day(bucket):
                counts[n] = days.get(bucket.start, {}).get(ACTIVE_USERS, (0, 0))[0]
                continue
            counts[n] = 0
            parts = [select(literal(n).label("bucket"), _activity.c.user_id).where(w) for w in _slices(bucket)]
            if len(chunks[-1]) + len(parts) > _PARTS_PER_QUERY:  # a bucket's parts stay in one query
                chunks.append([])
            chunks[-1].extend(parts)
        for chunk in chunks:
            if not chunk:
                continue
            active = union_all(*chunk).subquery()
            query = select(active.c.bucket, func.count(active.c.user_id.distinct())).group_by(active.c.bucket)
            for n, count in session.execute(query):
                counts[n] = count
        return counts

    # -- from the ledger ---------------------------------------------------------------------
    def balances(self, as_of: datetime) -> dict[str, Any]:
        """The trial balance at as_of: issued, redeemed, and what the wallets held (each its last
        balance_after before as_of), which must equal issued - redeemed."""
        with self._db.unit_of_work(write=False) as uow:
            s = uow.session

            def system_total(account: str) -> int:
                total = s.scalar(
                    select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                        LedgerEntry.account_id == account, LedgerEntry.created_at < as_of
                    )
                )
                return int(total or 0)

            latest = (
                select(LedgerEntry.balance_after)
                .where(LedgerEntry.account_id == Account.id, LedgerEntry.created_at < as_of)
                .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
                .limit(1)
                .scalar_subquery()
            )
            outstanding = s.scalar(select(func.coalesce(func.sum(latest), 0)).where(Account.kind == "user"))
            wallets = s.scalar(
                select(func.count()).select_from(Account).where(Account.kind == "user", Account.created_at < as_of)
            )
            issued, redeemed = -system_total(ISSUANCE_ACCOUNT), system_total(REDEMPTION_ACCOUNT)
        outstanding = int(outstanding or 0)
        return {
            "as_of": as_of,
            "issued": issued,
            "redeemed": redeemed,
            "outstanding": outstanding,
            "wallets": int(wallets or 0),
            "balanced": outstanding == issued - redeemed,
        }

    def top_users(self, start: datetime, end: datetime, by: str, limit: int) -> list[dict[str, Any]]:
        """Users by the credits they moved in [start, end) (in and out), or by how many
        transactions they took part in; read from the range's entries."""
        count, volume = func.count().label("count"), func.sum(func.abs(LedgerEntry.amount)).label("volume")
        order = (volume.desc(), count.desc()) if by == "volume" else (count.desc(), volume.desc())
        statement = (
            select(Account.user_id, User.username, count, volume)
            .join(Account, Account.id == LedgerEntry.account_id)
            .join(User, User.id == Account.user_id)
            .where(Account.kind == "user", LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
            .group_by(Account.user_id, User.username)
            .order_by(*order, Account.user_id)
            .limit(limit)
        )
        with self._db.unit_of_work(write=False) as uow:
            rows = uow.session.execute(statement).all()
        return [
            {"user_id": user_id, "username": username, "count": int(n), "volume": int(v)}
            for user_id, username, n, v in rows
        ]

    def statement(
        self, actor: Principal, user_id: str, start: datetime, end: datetime
    ) -> tuple[dict[str, Any], Iterator[StatementLine]]:
        """The head of a wallet's statement for [start, end) (opening and closing balances)
        and its lines, read lazily: iterate them to the end (or close them) to release the
        connection. Owner, admin or auditor; 404 for an unknown user."""
        require_owner_or_admin(actor, user_id, "you may only read your own statement", read=True)
        with self._db.unit_of_work(write=False) as uow:
            account_id = uow.session.scalar(select(Account.id).where(Account.user_id == user_id))
            if account_id is None and uow.session.scalar(select(User.id).where(User.id == user_id)) is None:
                raise NotFound("no such user")
            opening = balance_as_of(uow.session, account_id, start) if account_id else 0
            closing = balance_as_of(uow.session, account_id, end) if account_id else 0
        head = {"user_id": user_id, "start": start, "end": end, "opening_balance": opening, "closing_balance": closing}
        return head, self._lines(account_id, user_id, start, end)

    def _lines(self, account_id: str | None, user_id: str, start: datetime, end: datetime) -> Iterator[StatementLine]:
        if account_id is None:
            return
        statement = (
            select(
                LedgerEntry.transaction_id,
                LedgerEntry.tx_type,
                LedgerEntry.amount,
                LedgerEntry.balance_after,
                LedgerEntry.created_at,
                Transaction.from_user_id,
                Transaction.to_user_id,
            )
            .join(Transaction, Transaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.account_id == account_id, LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
            .order_by(LedgerEntry.created_at, LedgerEntry.id)
            .execution_options(yield_per=1000)  # a server-side cursor on PostgreSQL: constant memory
        )
        with self._db.unit_of_work(write=False) as uow:
            for tx_id, tx_type, amount, after, created_at, from_user, to_user in uow.session.execute(statement):
                other = to_user if from_user == user_id else from_user
                yield StatementLine(tx_id, tx_type, amount, after, other, created_at)
