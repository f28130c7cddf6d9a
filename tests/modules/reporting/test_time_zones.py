"""Summary buckets in an IANA zone across DST changes: local midnights as boundaries, a
23-hour and a 25-hour day, each transaction in the local day it happened on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.events import Event


def posted(app, at: str, amount: int, type_: str = "deposit", user_id: str = "u1") -> None:
    """A transaction.posted event, handled by the module as a delivery would."""
    event = Event(
        id=str(uuid.uuid4()),
        sequence=1,
        type="transaction.posted",
        occurred_at=datetime.fromisoformat(at),
        actor_type="system",
        actor_id=None,
        request_id=None,
        data={
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
