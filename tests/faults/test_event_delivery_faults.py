"""The event backbone under faults, with real `credit-system worker` processes: a worker
SIGKILLed in the middle of a handler, and the queue's Redis killed and restarted under load.
Nothing may be lost, nothing handled twice, and every module sees its events in order.
Both database backends: a SQLite file, and PostgreSQL on the fault cluster."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from dependency_injector import providers
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from app import build_container, create_app
from app.config import load_settings
from app.infrastructure.migrations import upgrade
from app.infrastructure.tables import EventDelivery, OutboxEvent
from app.services.passwords import Passwords
from tests.faults.harness import wait_until
from tests.fixtures_modules import events as fixtures
from tests.helpers import bearer, login, make_admin
from tests.servers import WorkerProcess, server_env

pytestmark = [pytest.mark.integration, pytest.mark.faults]
EXTRA = "tests.fixtures_modules.events:Journal,tests.fixtures_modules.events:JournalOfMoney"
FAST = {
    "CREDIT_EVENTS_LEASE_SECONDS": "2",
    "CREDIT_EVENTS_SWEEP_SECONDS": "0.5",
    "CREDIT_MODULES_EXTRA": EXTRA,
}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
        upgrade(url)
        return url
    return request.getfixturevalue("postgres").url


def local_app(database_url: str, queue_url: str, instance: Path):
    """The app in this process (its commits wake the relay through the queue, as a server's do)."""
    settings = load_settings(
        environ={},
        database_url=database_url,
        cache_url="memory://",
        queue_url=queue_url,
        secret_key="fault-secret-key-0123456789abcdef0123",
        instance_path=str(instance),
        modules_extra=EXTRA,
        login_max_failures=1000,
        registrations_per_address=100_000,
    )
    container = build_container(settings)
    container.passwords.override(providers.Singleton(Passwords, time_cost=1, memory_cost=1024))
    return create_app(settings, container=container)


def delivery_state(engine) -> tuple[int, int, int]:
    """(events not yet relayed, deliveries still owed, deliveries done)."""
    with engine.connect() as conn:
        unstamped = conn.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sequence.is_(None)))
        owed = conn.scalar(
            select(func.count()).select_from(EventDelivery).where(EventDelivery.status.in_(["pending", "failed"]))
        )
        done = conn.scalar(select(func.count()).select_from(EventDelivery).where(EventDelivery.status == "done"))
    return unstamped, owed, done


def assert_each_event_once_in_order(engine) -> None:
    """Every relayed event reached each module it is owed to exactly once, in sequence order."""
    with engine.connect() as conn:
        owed = conn.execute(
            select(EventDelivery.subscriber, OutboxEvent.event_id, OutboxEvent.sequence)
            .join(OutboxEvent, OutboxEvent.id == EventDelivery.event_id)
            .order_by(EventDelivery.subscriber, OutboxEvent.sequence)
        ).all()
    for module in ("journal", "journal_of_money"):
        expected = [(event_id, sequence) for name, event_id, sequence in owed if name == module]
        seen = [(event_id, sequence) for event_id, sequence, _ in fixtures.journal(engine, module)]
        assert seen == expected, (module, len(seen), len(expected))
    assert delivery_state(engine)[:2] == (0, 0)


def register(client, name: str) -> dict:
    response = client.post(
        "/users", json={"username": name, "email": f"{name}@example.com", "password": "long-password-1"}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_a_worker_killed_mid_handler_loses_nothing(database_url, redis_server, tmp_path):
    queue_url = redis_server.url(3) if database_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'queue.db'}"
    engine = create_engine(database_url, poolclass=NullPool)
    fixtures.clear(engine)
    app = local_app(database_url, queue_url, tmp_path)
    client = app.test_client()
    try:
        for name in ("before1", "before2", "slowpoke", "after1", "after2"):
            register(client, name)
        marker = tmp_path / "slow.marker"
        env = server_env(
            database_url,
            "memory://",
            tmp_path,
            CREDIT_QUEUE_URL=queue_url,
            CREDIT_TEST_SLOW_USERNAME="slowpoke",
            CREDIT_TEST_SLOW_SECONDS="120",
            CREDIT_TEST_SLOW_MARKER=str(marker),
            **FAST,
        )
        doomed = WorkerProcess(env, log_path=tmp_path / "doomed.log").start()
        try:
            assert wait_until(lambda: marker.exists(), timeout=60) is not None, (tmp_path / "doomed.log").read_text()
        finally:
            doomed.kill()  # in the middle of slowpoke's handler: its batch never commits
        seen_before = {row[0] for row in fixtures.journal(engine, "journal")}

        calm = {k: v for k, v in env.items() if not k.startswith("CREDIT_TEST_SLOW")}
        with WorkerProcess(calm, log_path=tmp_path / "rescuer.log") as rescuer:
            # The killed worker's lease expires (2 s); the rescuer's sweep takes the module over.
            assert wait_until(lambda: delivery_state(engine)[:2] == (0, 0), timeout=90) is not None, (
                delivery_state(engine),
                (tmp_path / "rescuer.log").read_text()[-3000:],
            )
            assert rescuer.stop() == 0
        assert_each_event_once_in_order(engine)
        slowpoke = [row for row in fixtures.journal(engine, "journal") if row[2] == "user.created"]
        assert len(slowpoke) == 5 and len(seen_before) < len(fixtures.journal(engine, "journal"))
    finally:
        app.module_manager.shutdown()
        engine.dispose()


def test_the_queue_down_and_back_under_load_loses_nothing(database_url, redis_server, tmp_path):
    queue_url = redis_server.url(3)
    engine = create_engine(database_url, poolclass=NullPool)
    fixtures.clear(engine)
    app = local_app(database_url, queue_url, tmp_path)
    make_admin(app)
    admin = bearer(login(app.test_client(), "admin"))
    env = server_env(database_url, "memory://", tmp_path, CREDIT_QUEUE_URL=queue_url, **FAST)
    statuses: list[int] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        client = app.test_client()
        n = 0
        while not stop.is_set():
            user = register(client, f"w{worker}n{n}")
            statuses.append(201)
            response = client.post("/wallet/deposit", json={"user_id": user["id"], "amount": 5}, headers=admin)
            statuses.append(response.status_code)
            n += 1

    try:
        with WorkerProcess(env, log_path=tmp_path / "worker.log") as worker:
            threads = [threading.Thread(target=load, args=(i,)) for i in range(3)]
            for thread in threads:
                thread.start()
            time.sleep(2)
            redis_server.kill()
            down_from = len(statuses)
            time.sleep(3)
            health = app.test_client().get("/modules/connection_api/health", headers=admin).get_json()
            assert health["status"] == "degraded" and "queue unreachable" in health["details"]["error"], health
            written_while_down = len(statuses) - down_from
            redis_server.start()
            time.sleep(2)
            stop.set()
            for thread in threads:
                thread.join(60)
            assert written_while_down > 0 and set(statuses) == {201}
            assert wait_until(lambda: delivery_state(engine)[:2] == (0, 0), timeout=90) is not None, (
                delivery_state(engine),
                (tmp_path / "worker.log").read_text()[-3000:],
            )
            assert worker.stop() == 0
        assert_each_event_once_in_order(engine)
        with engine.connect() as conn:
            sequences = conn.scalars(select(OutboxEvent.sequence).order_by(OutboxEvent.sequence)).all()
            assert sequences == list(range(1, len(sequences) + 1))
            assert conn.execute(text("SELECT count(*) FROM journal_seen WHERE module = 'journal'")).scalar() == len(
                sequences
            )
    finally:
        stop.set()
        app.module_manager.shutdown()
        engine.dispose()
