"""Summary buckets in an IANA zone across DST changes: local midnights as boundaries, a
23-hour and a 25-hour day, each transaction in the local day it happened on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.events import Event


def posted(app, at: str, amount: int, type_: str = "deposit", user_id: str = "u1") -> None:
    """A transaction.posted event, handled by reporting_module."""
    event = _event(
        "transaction.posted",
        at,
        {
            "transaction": {
                "id": str(uuid.uuid4()),
                "type": type_,
                "amount": amount,
                "from_user_id": None,
                "to_user_id": user_id,
                "created_at": at,
            },
            "balances": {},
        },
    )
    handle(app, event)


def handle(app, event: Event) -> None:
    """Handle event in reporting_module as a delivery would."""
    module = app.module_manager.get_module("reporting_module")
    with app.container.database().unit_of_work() as uow:
        module.handle_events(uow, [event])
        uow.commit()


def days(client, headers, tz: str, start: str, end: str) -> list[tuple[str, str, int, int, int]]:
    response = client.get(
        "/reports/summary", query_string={"from": start, "to": end, "tz": tz, "interval": "day"}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    return [
        (b["start"], b["end"], b["deposits"]["count"], b["deposits"]["amount"], b["active_users"])
        for b in response.get_json()["buckets"]
    ]


def test_spring_forward_in_berlin(app, client, people):
    # 2026-03-29: clocks go from 02:00 CET (UTC+1) to 03:00 CEST (UTC+2); that day is 23 hours.
    posted(app, "2026-03-28T22:30:00+00:00", 1)  # 23:30 on the 28th, Berlin
    posted(app, "2026-03-28T23:30:00+00:00", 2)  # 00:30 on the 29th
    posted(app, "2026-03-29T21:30:00+00:00", 4, user_id="u2")  # 23:30 on the 29th (CEST)
    posted(app, "2026-03-29T22:30:00+00:00", 8)  # 00:30 on the 30th
    got = days(client, people.admin.headers, "Europe/Berlin", "2026-03-28", "2026-03-31")
    assert got == [
        ("2026-03-27T23:00:00+00:00", "2026-03-28T23:00:00+00:00", 1, 1, 1),
        ("2026-03-28T23:00:00+00:00", "2026-03-29T22:00:00+00:00", 2, 6, 2),
        ("2026-03-29T22:00:00+00:00", "2026-03-30T22:00:00+00:00", 1, 8, 1),
    ]
    # The same events by UTC day.
    utc = days(client, people.admin.headers, "UTC", "2026-03-28", "2026-03-30")
    assert [(count, amount) for _, _, count, amount, _ in utc] == [(2, 3), (2, 12)]


def test_fall_back_in_new_york(app, client, people):
    # 2026-11-01: clocks go from 02:00 EDT (UTC-4) back to 01:00 EST (UTC-5); that day is 25 hours.
    posted(app, "2026-11-01T03:45:00+00:00", 1)  # 23:45 on Oct 31 (EDT)
    posted(app, "2026-11-01T04:00:00+00:00", 2)  # 00:00 on Nov 1
    posted(app, "2026-11-02T04:45:00+00:00", 4)  # 23:45 on Nov 1 (EST): still Nov 1
    posted(app, "2026-11-02T05:00:00+00:00", 8)  # 00:00 on Nov 2
    got = days(client, people.admin.headers, "America/New_York", "2026-10-31", "2026-11-03")
    assert got == [
        ("2026-10-31T04:00:00+00:00", "2026-11-01T04:00:00+00:00", 1, 1, 1),
        ("2026-11-01T04:00:00+00:00", "2026-11-02T05:00:00+00:00", 2, 6, 1),
        ("2026-11-02T05:00:00+00:00", "2026-11-03T05:00:00+00:00", 1, 8, 1),
    ]


@pytest.mark.parametrize("interval, expected", [("week", [3, 1]), ("month", [3, 1])])
def test_weeks_and_months_in_a_zone(app, client, people, interval, expected):
    posted(app, "2026-03-29T21:30:00+00:00", 1)  # Sunday the 29th, 23:30 in Berlin
    posted(app, "2026-03-30T21:59:00+00:00", 1, user_id="u2")  # Monday the 30th
    posted(app, "2026-03-31T21:45:00+00:00", 1, user_id="u3")  # Tuesday the 31st, 23:45 CEST
    posted(app, "2026-03-31T22:00:00+00:00", 1, user_id="u4")  # Wednesday April 1st, 00:00
    start, end = ("2026-03-30", "2026-04-06") if interval == "week" else ("2026-03-01", "2026-05-01")
    response = client.get(
        "/reports/summary",
        query_string={"from": start, "to": end, "tz": "Europe/Berlin", "interval": interval},
        headers=people.admin.headers,
    )
    buckets = response.get_json()["buckets"]
    if interval == "week":  # one week from Monday 30th: the 29th is outside, April 1st inside
        assert [b["deposits"]["count"] for b in buckets] == [3]
        assert buckets[0]["active_users"] == 3
    else:
        assert [b["deposits"]["count"] for b in buckets] == expected
        assert [b["active_users"] for b in buckets] == expected
        assert buckets[1]["start"] == "2026-03-31T22:00:00+00:00"
    assert datetime.fromisoformat(buckets[0]["start"]) >= datetime(2026, 2, 28, tzinfo=UTC)


def kept(app) -> dict[tuple[str, str], dict]:
    """The summary buckets kept in report_kept_buckets, by (start, until) in UTC."""
    with app.container.database().engine.connect() as conn:
        rows = conn.execute(text("SELECT start, until, body FROM report_kept_buckets")).all()
    return {(_iso(start), _iso(until)): json.loads(body) for start, until, body in rows}


def _iso(value) -> str:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def plant(app, deposits: int) -> None:
    """Overwrite every kept bucket's deposit count: a summary showing it read the kept bucket."""
    with app.container.database().engine.begin() as conn:
        for start, until, body in conn.execute(text("SELECT start, until, body FROM report_kept_buckets")).all():
            body = {**json.loads(body), "deposits": {"count": deposits, "amount": 0}}
            conn.execute(
                text("UPDATE report_kept_buckets SET body = :body WHERE start = :start AND until = :until"),
                {"body": json.dumps(body), "start": start, "until": until},
            )


def test_a_kept_bucket_is_read_until_a_day_it_overlaps_changes(app, client, people):
    posted(app, "2026-03-10T22:30:00+00:00", 1)  # 23:30 on the 10th, Berlin
    posted(app, "2026-03-11T08:00:00+00:00", 2, user_id="u2")  # 09:00 on the 11th
    headers = people.admin.headers
    got = days(client, headers, "Europe/Berlin", "2026-03-10", "2026-03-12")
    assert [(count, amount, users) for _, _, count, amount, users in got] == [(1, 1, 1), (1, 2, 1)]
    eleventh = ("2026-03-10T23:00:00+00:00", "2026-03-11T23:00:00+00:00")
    kept_now = kept(app)
    assert set(kept_now) == {("2026-03-09T23:00:00+00:00", "2026-03-10T23:00:00+00:00"), eleventh}
    assert kept_now[eleventh]["deposits"] == {"count": 1, "amount": 2} and kept_now[eleventh]["active_users"] == 1
    # UTC days are read from their own totals, never kept.
    days(client, headers, "UTC", "2026-03-10", "2026-03-12")
    assert len(kept(app)) == 2

    # The next summary reads the kept bucket, not the aggregates: a count planted there shows.
    plant(app, 7)
    assert [count for _, _, count, _, _ in days(client, headers, "Europe/Berlin", "2026-03-11", "2026-03-12")] == [7]

    # A transaction on a UTC day the bucket overlaps retires it: added up afresh, and kept.
    posted(app, "2026-03-11T21:00:00+00:00", 4, user_id="u3")  # 22:00 on the 11th
    got = days(client, headers, "Europe/Berlin", "2026-03-11", "2026-03-12")
    assert [(count, amount, users) for _, _, count, amount, users in got] == [(2, 6, 2)]
    assert kept(app)[eleventh]["active_users"] == 2

    # So does a new user (a change to the day's totals that is not a transaction).
    plant(app, 9)
    handle(app, user_created("2026-03-11T05:00:00+00:00"))
    got = days(client, headers, "Europe/Berlin", "2026-03-11", "2026-03-12")
    assert [(count, users) for _, _, count, _, users in got] == [(2, 2)]
    assert kept(app)[eleventh]["new_users"] == 1

    # A change on a day the bucket does not overlap leaves it kept (the planted count shows).
    plant(app, 9)
    posted(app, "2026-03-13T08:00:00+00:00", 1, user_id="u4")
    assert [count for _, _, count, _, _ in days(client, headers, "Europe/Berlin", "2026-03-11", "2026-03-12")] == [9]


def user_created(at: str) -> Event:
    return _event("user.created", at, {"user": {"id": str(uuid.uuid4()), "created_at": at}})


def _event(type_: str, at: str, data: dict) -> Event:
    return Event(
        id=str(uuid.uuid4()),
        sequence=1,
        type=type_,
        occurred_at=datetime.fromisoformat(at),
        actor_type="system",
        actor_id=None,
        request_id=None,
        data=data,
    )


def test_a_summary_answers_when_its_buckets_cannot_be_kept(app, client, people, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app.services.reports import kept as kept_buckets

    def refuse(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(kept_buckets, "dialect_insert", refuse)
    posted(app, "2026-03-11T08:00:00+00:00", 1)
    got = days(client, people.admin.headers, "Europe/Berlin", "2026-03-11", "2026-03-12")
    assert [(count, users) for _, _, count, _, users in got] == [(1, 1)]
    assert kept(app) == {}
