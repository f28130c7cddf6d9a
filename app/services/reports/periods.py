"""Time for reports: IANA zones, moments given with or without an offset, calendar buckets
(day, ISO week from Monday, month) whose boundaries are local midnights converted to UTC,
and the UTC days and quarter hours the aggregates are kept in. Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.services.errors import ValidationFailed

QUARTER = timedelta(minutes=15)
DAY = timedelta(days=1)
QUARTERS_PER_DAY = 96
HALF = 48  # quarters per mask column (early: before noon UTC, late: after)
MAX_BUCKETS = 366


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class Bucket:
    """[start, end) in UTC."""

    start: datetime
    end: datetime


def zone(name: str) -> ZoneInfo:
    """The IANA zone called name; ValueError for anything else (paths, empty, unknown)."""
    if not name or name.startswith(("/", ".")) or ".." in name or "\x00" in name:
        raise ValueError(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(name) from exc


def moment(value: datetime, tz: ZoneInfo) -> datetime:
    """An aware UTC datetime: value as given if it has an offset, else read as local time in tz."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def floor_quarter(t: datetime) -> datetime:
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


def floor_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def is_one_utc_day(bucket: Bucket) -> bool:
    return bucket.start == floor_day(bucket.start) and bucket.end - bucket.start == DAY


def utc_days(bucket: Bucket) -> list[datetime]:
    """The UTC days the bucket overlaps."""
    out, day = [], floor_day(bucket.start)
    while day < bucket.end:
        out.append(day)
        day += DAY
    return out


def on_quarter(t: datetime) -> bool:
    return floor_quarter(t) == t


def quarter_of_day(t: datetime) -> int:
    return (t.hour * 60 + t.minute) // 15


def mask_bits(first: int, last: int) -> tuple[int, int]:
    """(early, late) masks with quarters first..last-1 of a day set."""
    bits = ((1 << last) - 1) ^ ((1 << first) - 1)
    return bits & ((1 << HALF) - 1), bits >> HALF


def _calendar_start(local: date, interval: Interval) -> date:
    if interval is Interval.WEEK:
        return local - timedelta(days=local.weekday())
    if interval is Interval.MONTH:
        return local.replace(day=1)
    return local


def _next(local: date, interval: Interval) -> date:
    if interval is Interval.DAY:
        return local + timedelta(days=1)
    if interval is Interval.WEEK:
        return local + timedelta(days=7)
    return (local.replace(day=28) + timedelta(days=4)).replace(day=1)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # A midnight skipped by a DST change maps to the instant the day really starts.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def buckets(start: datetime, end: datetime, interval: Interval, tz: ZoneInfo) -> list[Bucket]:
    """The calendar buckets of [start, end) in tz, the first and last clipped to it.

    ValidationFailed when there would be more than MAX_BUCKETS.
    """
    local = _calendar_start(start.astimezone(tz).date(), interval)
    out: list[Bucket] = []
    edge = start
    while edge < end:
        local = _next(local, interval)
        following = min(_local_midnight(local, tz), end)
        if following <= edge:  # a calendar day that DST made empty in UTC: nothing to report
            continue
        if not on_quarter(following):  # a local mean time of old (Amsterdam 1900: +00:19:32)
            raise ValidationFailed.field("tz", "Its midnights in this interval fall off the quarter hours.")
        out.append(Bucket(edge, following))
        if len(out) > MAX_BUCKETS:
            raise ValidationFailed.field("to", f"The interval holds more than {MAX_BUCKETS} {interval.value}s.")
        edge = following
    return out


@dataclass(frozen=True)
class Pieces:
    """How to add up a UTC range from the aggregates: whole UTC days, plus and minus
    quarter-hour ranges (each within one UTC day, at most 48 quarters long)."""

    days: tuple[datetime, ...]
    plus: tuple[tuple[datetime, datetime], ...]
    minus: tuple[tuple[datetime, datetime], ...]


def pieces(start: datetime, end: datetime) -> Pieces:
    """[start, end) (quarter-aligned) as whole days +/- quarter ranges: a partial day is read
    from its quarters or as the whole day minus the other side, whichever is shorter."""
    days: list[datetime] = []
    plus: list[tuple[datetime, datetime]] = []
    minus: list[tuple[datetime, datetime]] = []
    day = floor_day(start)
    while day < end:
        following = day + DAY
        inside_start, inside_end = max(start, day), min(end, following)
        inside = (inside_end - inside_start) // QUARTER
        if inside == QUARTERS_PER_DAY:
            days.append(day)
        elif inside <= QUARTERS_PER_DAY // 2:
            plus.append((inside_start, inside_end))
        else:
            days.append(day)
            if inside_start > day:
                minus.append((day, inside_start))
            if inside_end < following:
                minus.append((inside_end, following))
        day = following
    return Pieces(tuple(days), tuple(plus), tuple(minus))


def last_days(days: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the last `days` calendar days in tz, today included."""
    today = datetime.now(tz).date()
    return _local_midnight(today - timedelta(days=days - 1), tz), _local_midnight(today + timedelta(days=1), tz)
