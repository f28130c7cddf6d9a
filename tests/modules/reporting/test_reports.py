"""Reports against the ledger's own numbers, after a random workload with reversals: the
summary's sums equal a direct SQL sum, the trial balance equals `ledger verify`, a balance
as of a moment equals a replay of entries, a statement adds up; redelivered and raced
events count once."""

from __future__ import annotations

import csv
import io
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.events import Event
from app.infrastructure.tables import Account, LedgerEntry, Transaction, User
from app.services.ledger_verify import LedgerVerifier
from app.testing import assert_error, deliver_events, ledger_snapshot, login
from tests.helpers import DEFAULT_PASSWORD
from tests.workload import FlaskHttp, Party, run_workload, setup_parties

TYPES = {"deposit": "deposits", "withdrawal": "withdrawals", "transfer": "transfers", "reversal": "reversals"}


@pytest.fixture
def workload(app, client, people):
    """A random workload (deposits, withdrawals, transfers, reversals), its events delivered."""
    http = FlaskHttp(app)
    admin = Party("admin", people.admin.headers)
    parties = setup_parties(http, admin, count=6, funding=300, password=DEFAULT_PASSWORD)
    result = run_workload(http, admin, parties, operations=150, threads=1, seed=15)
    assert not result.unexpected, result.unexpected[:3]
    deliver_events(app)
    with app.container.database().engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Transaction).where(Transaction.type == "reversal")) > 0
    return parties


def ledger_sums(app, start=None, end=None) -> dict[str, tuple[int, int]]:
    query = select(Transaction.type, func.count(), func.sum(Transaction.amount)).group_by(Transaction.type)
    if start is not None:
        query = query.where(Transaction.created_at >= start, Transaction.created_at < end)
    with app.container.database().engine.connect() as conn:
        return {type_: (int(n), int(total)) for type_, n, total in conn.execute(query)}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def summary(client, headers, **params):
    response = client.get("/reports/summary", query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_summary_sums_equal_the_ledgers_own(app, client, people, workload):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=2), today + timedelta(days=2)
    body = summary(client, people.admin.headers, **{"from": iso(start), "to": iso(end), "interval": "day"})
    assert body["interval"] == "day" and body["tz"] == "UTC" and len(body["buckets"]) == 4
    expected = ledger_sums(app)
    for type_, key in TYPES.items():
        count = sum(bucket[key]["count"] for bucket in body["buckets"])
        amount = sum(bucket[key]["amount"] for bucket in body["buckets"])
        assert (count, amount) == expected.get(type_, (0, 0)), type_
    with app.container.database().engine.connect() as conn:
        users = conn.scalar(select(func.count()).select_from(User))
    assert sum(bucket["new_users"] for bucket in body["buckets"]) == users
    today_bucket = next(b for b in body["buckets"] if b["start"].startswith(today.date().isoformat()))
    assert today_bucket["active_users"] == len(workload)  # every party was funded today
    # One month-long bucket of the same range: the same sums, read through the quarter rows.
    whole = summary(client, people.admin.headers, **{"from": iso(start), "to": iso(end), "interval": "month"})
    for type_, key in TYPES.items():
        assert (
            sum(b[key]["count"] for b in whole["buckets"]),
            sum(b[key]["amount"] for b in whole["buckets"]),
        ) == expected.get(type_, (0, 0))
    assert sum(b["active_users"] for b in whole["buckets"]) >= len(workload)


def test_a_partial_range_matches_a_direct_sql_sum(app, client, people, workload):
    """Edges inside a day, in a zone 5h45 from UTC: read from quarter rows and day-minus-quarters."""
    with app.container.database().engine.connect() as conn:
        times = sorted(conn.scalars(select(Transaction.created_at)))
    middle = times[len(times) // 2].replace(second=0, microsecond=0)
    start = middle.replace(minute=middle.minute - middle.minute % 15)
    end = start + timedelta(hours=1)
    body = summary(
        client, people.admin.headers, **{"from": iso(start - timedelta(days=3)), "to": iso(end), "tz": "Asia/Kathmandu"}
    )
    expected = ledger_sums(app, start - timedelta(days=3), end)
    for type_, key in TYPES.items():
        got = (sum(b[key]["count"] for b in body["buckets"]), sum(b[key]["amount"] for b in body["buckets"]))
        assert got == expected.get(type_, (0, 0)), type_
    assert body["buckets"][-1]["end"].startswith(iso(end).replace("Z", ""))


def test_trial_balance_equals_ledger_verify(app, client, people, workload):
    report = LedgerVerifier(app.container.database()).verify()
    response = client.get("/reports/balances", headers=people.admin.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["issued"] == report.issued and body["redeemed"] == report.redeemed
    assert body["outstanding"] == report.total_balance == body["issued"] - body["redeemed"]
    assert body["balanced"] is True and body["wallets"] == report.wallets
    before = client.get(
        "/reports/balances", query_string={"as_of": "2000-01-01T00:00:00Z"}, headers=people.admin.headers
    )
    assert before.get_json() | {"as_of": None} == {
        "as_of": None,
        "issued": 0,
        "redeemed": 0,
        "outstanding": 0,
        "wallets": 0,
        "balanced": True,
    }


def test_balance_as_of_equals_a_replay_of_entries(app, client, people, workload):
    with app.container.database().engine.connect() as conn:
        entries = conn.execute(
            select(Account.user_id, LedgerEntry.amount, LedgerEntry.created_at)
            .join(Account, Account.id == LedgerEntry.account_id)
            .where(Account.kind == "user")
            .order_by(LedgerEntry.id)
        ).all()
    moments = sorted({created_at for _, _, created_at in entries})
    rng = random.Random(3)
    for moment in rng.sample(moments, 8) + [moments[0], moments[-1] + timedelta(microseconds=1)]:
        for party in workload[:3]:
            replay = sum(amount for user, amount, at in entries if user == party.id and at < moment)
            response = client.get(
                f"/wallet/balance/{party.id}", query_string={"as_of": moment.isoformat()}, headers=party.headers
            )
            assert response.status_code == 200, response.get_json()
            assert response.get_json()["balance"] == replay
            assert response.get_json()["as_of"].startswith(moment.replace(tzinfo=None).isoformat()[:19])


def test_a_statement_adds_up_and_streams_as_csv(app, client, people, workload):
    party = workload[0]
    with app.container.database().engine.connect() as conn:
        times = sorted(conn.scalars(select(LedgerEntry.created_at)))
    start, end = times[len(times) // 4], times[3 * len(times) // 4]
    params = {"from": start.isoformat(), "to": end.isoformat()}
    response = client.get(f"/wallet/statement/{party.id}", query_string=params, headers=party.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user_id"] == party.id and body["from"].startswith(start.replace(tzinfo=None).isoformat()[:19])
    assert body["to"].startswith(end.replace(tzinfo=None).isoformat()[:19])
    running = body["opening_balance"]
    for entry in body["entries"]:
        running += entry["amount"]
        assert entry["balance_after"] == running
        if entry["type"] == "transfer":
            assert entry["counterparty_id"] not in (None, party.id)
    assert running == body["closing_balance"]
    as_of = client.get(f"/wallet/balance/{party.id}", query_string={"as_of": start.isoformat()}, headers=party.headers)
    assert as_of.get_json()["balance"] == body["opening_balance"]

    streamed = client.get(
        f"/wallet/statement/{party.id}", query_string={**params, "format": "csv"}, headers=people.admin.headers
    )
    assert streamed.status_code == 200 and streamed.mimetype == "text/csv" and streamed.is_streamed
    rows = list(csv.DictReader(io.StringIO(streamed.get_data(as_text=True))))
    assert [(r["transaction_id"], int(r["amount"]), int(r["balance_after"])) for r in rows] == [
        (e["transaction_id"], e["amount"], e["balance_after"]) for e in body["entries"]
    ]


def test_top_users_match_the_entries(app, client, people, workload):
    response = client.get(
        "/reports/top-users",
        query_string={"from": "2000-01-01", "to": "2999-01-01", "by": "volume", "limit": 3},
        headers=people.admin.headers,
    )
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    with app.container.database().engine.connect() as conn:
        expected = conn.execute(
            select(Account.user_id, func.count(), func.sum(func.abs(LedgerEntry.amount)))
            .join(Account, Account.id == LedgerEntry.account_id)
            .where(Account.kind == "user")
            .group_by(Account.user_id)
        ).all()
    ranked = sorted(expected, key=lambda row: (-row[2], -row[1], row[0]))[:3]
    assert [(i["user_id"], i["count"], i["volume"]) for i in items] == [(u, int(n), int(v)) for u, n, v in ranked]
    by_count = client.get(
        "/reports/top-users",
        query_string={"from": "2000-01-01", "to": "2999-01-01", "by": "count"},
        headers=people.admin.headers,
    ).get_json()["items"]
    assert [i["count"] for i in by_count] == sorted((i["count"] for i in by_count), reverse=True)


def _counted_events(app) -> list[Event]:
    """Every relayed transaction.posted and user.created, as a handler receives them."""
    from app.events import store

    with app.container.database().unit_of_work(write=False) as uow:
        rows = store.feed(uow.session, 0, None, 100_000)
        return [Event.from_row(row) for row in rows if row.type in ("transaction.posted", "user.created")]


def totals(app):
    from app.infrastructure.tables_reporting import ReportActivity, ReportTotal

    with app.container.database().engine.connect() as conn:
        return (
            sorted(
                conn.execute(
                    select(
                        ReportTotal.span, ReportTotal.start, ReportTotal.metric, ReportTotal.count, ReportTotal.amount
                    )
                ).all()
            ),
            sorted(
                conn.execute(
                    select(ReportActivity.day, ReportActivity.user_id, ReportActivity.early, ReportActivity.late)
                ).all()
            ),
        )


def test_redelivered_and_raced_events_count_once(app, client, people, workload):
    module = app.module_manager.get_module("reporting_module")
    database = app.container.database()
    before = totals(app)
    events = _counted_events(app)
    assert len(events) > 100
    for event in events[:50]:  # a redelivery of each
        with database.unit_of_work() as uow:
            module.handle_events(uow, [event])
            uow.commit()
    assert totals(app) == before

    # A new event, handled by two threads at once: counted once.
    people.fund(people.alice, 5)
    new = _counted_events(app)[-1]
    from app.infrastructure.tables_reporting import ReportCountedEvent

    with database.engine.begin() as conn:  # pretend it was not delivered yet
        conn.execute(ReportCountedEvent.__table__.delete().where(ReportCountedEvent.event_id == new.id))
    after_delivery = totals(app)
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def handle():
        try:
            barrier.wait()
            with database.unit_of_work() as uow:
                module.handle_events(uow, [new])
                uow.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=handle) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    days, _ = totals(app)
    grown = [
        (new_row, old_row)
        for new_row in days
        for old_row in after_delivery[0]
        if new_row[:3] == old_row[:3] and new_row[3:] != old_row[3:]
    ]
    assert sorted((n[0], n[2], n[3] - o[3], n[4] - o[4]) for n, o in grown) == [
        ("day", "deposit", 1, 5),
        ("quarter", "deposit", 1, 5),
    ]


def test_reports_are_for_admins_and_auditors(client, people):
    for path in (
        "/reports/summary?from=2026-01-01&to=2026-01-02",
        "/reports/balances",
        "/reports/top-users?from=2026-01-01&to=2026-01-02",
    ):
        assert_error(client.get(path, headers=people.alice.headers), 403, "forbidden")
        assert_error(client.get(path), 401, "unauthorized")
    statement = client.get(f"/wallet/statement/{people.bob.id}", headers=people.alice.headers)
    assert_error(statement, 403, "forbidden")
    assert_error(client.get("/wallet/statement/nobody", headers=people.admin.headers), 404, "not_found")
    as_of = client.get(f"/wallet/balance/{people.bob.id}?as_of=2026-01-01", headers=people.alice.headers)
    assert_error(as_of, 403, "forbidden")


@pytest.mark.parametrize(
    "path, field",
    [
        ("/reports/summary?from=2026-02-01&to=2026-01-01", "from"),
        ("/reports/summary?from=2026-01-01&to=2026-01-01", "from"),
        ("/reports/summary?from=2020-01-01&to=2026-01-01&interval=day", "to"),
        ("/reports/summary?from=2026-01-01&to=2026-01-02&tz=Mars/Olympus", "tz"),
        ("/reports/summary?from=2026-01-01&to=2026-01-02&tz=../../etc/passwd", "tz"),
        ("/reports/summary?from=1900-01-01T00:00:00Z&to=1900-01-05T00:00:00Z&tz=Europe/Amsterdam", "tz"),
        ("/reports/summary?from=yesterday&to=2026-01-02", "from"),
        ("/reports/summary?from=2026-01-01&to=2026-13-02", "to"),
        ("/reports/summary?from=2026-01-01T00:07:00Z&to=2026-01-02", "from"),
        ("/reports/summary?from=2026-01-01&to=2026-01-02&interval=year", "interval"),
        ("/reports/summary?to=2026-01-02", "from"),
        ("/reports/balances?as_of=2999-01-01T00:00:00Z", "as_of"),
        ("/reports/balances?as_of=soon", "as_of"),
        ("/reports/top-users?from=2026-01-01&to=2026-01-02&by=luck", "by"),
        ("/reports/top-users?from=2026-01-01&to=2026-01-02&limit=0", "limit"),
        ("/wallet/statement/{me}?from=2026-02-01&to=2026-01-01", "from"),
        ("/wallet/statement/{me}?format=xml", "format"),
        ("/wallet/balance/{me}?as_of=2999-01-01", "as_of"),
        ("/wallet/balance/{me}?as_of=not-a-date", "as_of"),
    ],
)
def test_bad_input_is_a_422_that_writes_nothing(app, client, people, path, field):
    before = ledger_snapshot(app)
    response = client.get(path.format(me=people.admin.id), headers=people.admin.headers)
    error = assert_error(response, 422, "validation_error")
    assert field in error["details"], error
    assert ledger_snapshot(app) == before


def test_summary_allows_366_buckets_and_a_future_to(client, people):
    body = summary(client, people.admin.headers, **{"from": "2026-01-01", "to": "2027-01-02"})
    assert len(body["buckets"]) == 366
    assert body["buckets"][0]["start"].startswith("2026-01-01T00:00:00")
    weeks = summary(client, people.admin.headers, **{"from": "2026-01-01", "to": "2026-02-01", "interval": "week"})
    # 2026-01-01 is a Thursday: the first week is clipped to it, the next ones start on Mondays.
    assert [b["start"][:10] for b in weeks["buckets"]] == [
        "2026-01-01",
        "2026-01-05",
        "2026-01-12",
        "2026-01-19",
        "2026-01-26",
    ]


def test_an_auditor_reads_reports_and_statements(client, people):
    auditor = people.add("audrey")
    promoted = client.patch(f"/users/{auditor.id}", json={"role": "auditor"}, headers=people.admin.headers)
    assert promoted.status_code == 200, promoted.get_json()
    headers = {"Authorization": f"Bearer {login(client, 'audrey')}"}  # a role change ends the old token
    people.fund(people.alice, 40)
    for path in (
        "/reports/summary?from=2026-01-01&to=2026-01-02",
        "/reports/balances",
        "/reports/top-users?from=2026-01-01&to=2026-01-02",
        f"/wallet/statement/{people.alice.id}",
        f"/wallet/balance/{people.alice.id}?as_of=2026-01-01",
        "/dashboard/panels/modules.svg",
    ):
        assert client.get(path, headers=headers).status_code == 200, path
