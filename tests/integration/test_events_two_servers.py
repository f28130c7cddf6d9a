"""Two gunicorn servers and two `credit-system worker` processes on PostgreSQL + Redis: every
event of 2,000 concurrent operations reaches each module that handles it exactly once, in
sequence order, and `GET /events` pages through all of them without a gap."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from app.infrastructure.tables import EventDelivery, OutboxEvent
from tests import backends
from tests.faults.harness import wait_until
from tests.fixtures_modules import events as fixtures
from tests.helpers import DEFAULT_PASSWORD
from tests.httpclient import ServersClient
from tests.servers import ROOT, ServerProcess, WorkerProcess, ensure_admin, server_env
from tests.workload import Party, run_workload, setup_parties

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SERVER_REDIS_URL = backends.REDIS_URL.rsplit("/", 1)[0] + "/14"
MODULES = ("journal", "journal_of_money")


@pytest.fixture
def shared_postgres():
    with backends.throwaway_postgres(SERVER_REDIS_URL) as database_url:
        yield database_url


def test_two_servers_and_two_workers_deliver_every_event_once_in_order(shared_postgres, tmp_path):
    engine = create_engine(shared_postgres, poolclass=NullPool)
    fixtures.clear(engine)
    ensure_admin(shared_postgres, tmp_path, SERVER_REDIS_URL)
    env = server_env(
        shared_postgres,
        SERVER_REDIS_URL,
        tmp_path,
        PYTHONPATH=str(ROOT),
        CREDIT_MODULES_EXTRA="tests.fixtures_modules.events:Journal,tests.fixtures_modules.events:JournalOfMoney",
        CREDIT_EVENTS_SWEEP_SECONDS="1",
        CREDIT_LOGIN_MAX_FAILURES="1000",
    )
    try:
        with (
            ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "a.log") as a,
            ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "b.log") as b,
            WorkerProcess(env, concurrency=2, log_path=tmp_path / "w1.log") as w1,
            WorkerProcess(env, concurrency=2, log_path=tmp_path / "w2.log") as w2,
        ):
            http = ServersClient([a.url, b.url], timeout=60, seed=5)
            admin = Party("admin", http.login("admin"))
            parties = setup_parties(http, admin, count=12, funding=500, password=DEFAULT_PASSWORD)
            result = run_workload(http, admin, parties, operations=2000, threads=16, seed=21)
            assert not result.unexpected, result.unexpected[:5]

            def settled() -> bool:
                with engine.connect() as conn:
                    unstamped = conn.scalar(
                        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sequence.is_(None))
                    )
                    owed = conn.scalar(
                        select(func.count())
                        .select_from(EventDelivery)
                        .where(EventDelivery.status.in_(["pending", "failed"]))
                    )
                return unstamped == 0 and owed == 0

            assert wait_until(settled, timeout=120) is not None, (tmp_path / "w1.log").read_text()[-3000:]
            assert w1.stop() == 0 and w2.stop() == 0  # SIGTERM: graceful, exit 0

            with engine.connect() as conn:
                events = conn.execute(
                    select(OutboxEvent.event_id, OutboxEvent.sequence, OutboxEvent.type).order_by(OutboxEvent.sequence)
                ).all()
                owed = conn.execute(
                    select(EventDelivery.subscriber, EventDelivery.sequence, EventDelivery.status)
                ).all()
            assert [sequence for _, sequence, _ in events] == list(range(1, len(events) + 1))
            assert len(events) >= result.statuses[201] > 1000  # each money movement posted one
            assert {status for *_, status in owed} == {"done"}
            for module in MODULES:
                wanted = {sequence for name, sequence, _ in owed if name == module}
                expected = [(e, s, t) for e, s, t in events if s in wanted]
                assert fixtures.journal(engine, module) == expected, module  # once each, in order
            assert len(fixtures.journal(engine, "journal")) == len(events)  # "*": every event

            paged, after = [], 0
            while True:
                status, page = http.get(f"/events?after={after}&limit=200", admin.headers)
                assert status == 200, page
                if not page["items"]:
                    break
                paged += page["items"]
                after = page["last_sequence"]
            assert [(e["id"], e["sequence"], e["type"]) for e in paged] == [tuple(row) for row in events]
    finally:
        engine.dispose()
