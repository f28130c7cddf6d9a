"""Summary buckets kept between requests.

A bucket that is exactly one UTC day reads its day's totals and active-user count. Any
other (a day in a zone off UTC, a week, a month) also reads quarter-hour rows at its edges
and counts its distinct active users from the activity rows, which costs in proportion to
how many users were active. Such a bucket is kept once added up, stamped with the sum of the
versions of the UTC days it overlaps. The event handler raises a day's version in the
transaction that changes that day's aggregates, and versions only grow, so while the sum
still equals the stamp, nothing the bucket was added up from has changed.

The versions are read before the aggregates: a bucket added up from newer aggregates than
its stamp says is merely added up again next time, where the other order could keep a stale
bucket as current.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.infrastructure.database import Database
from app.infrastructure.tables import utcnow
from app.infrastructure.tables_reporting import ReportDayVersion, ReportKeptBucket
from app.infrastructure.upsert import dialect_insert
from app.services.reports.periods import Bucket, floor_day, is_one_utc_day, utc_days

_log = logging.getLogger(__name__)
_kept = cast(Table, ReportKeptBucket.__table__)


def read(session: Session, spans: list[Bucket]) -> tuple[dict[int, dict[str, Any]], dict[int, int]]:
    """The kept buckets still current, by index in spans, and the current stamp of each
    other bucket worth keeping."""
    wanted = [n for n, bucket in enumerate(spans) if not is_one_utc_day(bucket)]
    if not wanted:
        return {}, {}
    first, end = spans[wanted[0]].start, spans[wanted[-1]].end
    versions = {
        day: version
        for day, version in session.execute(
            select(ReportDayVersion.day, ReportDayVersion.version).where(
                ReportDayVersion.day >= floor_day(first), ReportDayVersion.day < end
            )
        )
    }
    kept = {
        (start, until): (stamp, body)
        for start, until, stamp, body in session.execute(
            select(ReportKeptBucket.start, ReportKeptBucket.until, ReportKeptBucket.stamp, ReportKeptBucket.body).where(
                ReportKeptBucket.start >= first, ReportKeptBucket.start < end
            )
        )
    }
    current: dict[int, dict[str, Any]] = {}
    stamps: dict[int, int] = {}
    for n in wanted:
        bucket = spans[n]
        stamp = sum(versions.get(day, 0) for day in utc_days(bucket))
        kept_stamp, body = kept.get((bucket.start, bucket.end), (None, None))
        if kept_stamp == stamp and body is not None:
            current[n] = {"start": bucket.start, "end": bucket.end, **json.loads(body)}
        else:
            stamps[n] = stamp
    return current, stamps


def keep(database: Database, buckets: list[tuple[dict[str, Any], int]]) -> None:
    """Keep freshly added-up buckets (each with its stamp) for the next summary. Best effort:
    no answer depends on it, so a failure (SQLite's write lock busy, say) only means adding
    up again next time."""
    if not buckets:
        return
    now = utcnow()
    rows = [
        {
            "start": bucket["start"],
            "until": bucket["end"],
            "stamp": stamp,
            "body": json.dumps({k: v for k, v in bucket.items() if k not in ("start", "end")}),
            "kept_at": now,
        }
        for bucket, stamp in buckets
    ]
    try:
        with database.unit_of_work() as uow:
            statement = dialect_insert(uow.session, _kept)
            uow.session.execute(
                statement.on_conflict_do_update(
                    index_elements=["start", "until"],
                    set_={name: statement.excluded[name] for name in ("stamp", "body", "kept_at")},
                ),
                rows,
            )
            uow.commit()
    except SQLAlchemyError:
        _log.warning("report_buckets_not_kept", exc_info=True)
