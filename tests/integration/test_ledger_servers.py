"""Real server processes over HTTP: two gunicorn servers sharing PostgreSQL + Redis, and one
server on SQLite. Thousands of random operations; afterwards the books must balance."""

from __future__ import annotations

import pytest

from app import build_container
from app.config import load_settings
from app.infrastructure.migrations import upgrade
from app.services.ledger_verify import LedgerVerifier
from tests import backends
from tests.helpers import DEFAULT_PASSWORD
from tests.httpclient import ServersClient
from tests.servers import ServerProcess, ensure_admin, server_env
from tests.workload import Party, assert_books_balance, run_workload, setup_parties

SERVER_REDIS_URL = backends.REDIS_URL.rsplit("/", 1)[0] + "/14"


def _verifier(database_url: str, instance):
    container = build_container(
        load_settings(
            environ={},
            database_url=database_url,
            cache_url="memory://",
            instance_path=str(instance),
            secret_key="unused-here-0123456789abcdef012345",
        )
    )
    return container, LedgerVerifier(container.database())


@pytest.fixture
def shared_postgres():
    with backends.throwaway_postgres(SERVER_REDIS_URL) as database_url:
        yield database_url


@pytest.mark.integration
def test_two_servers_on_postgres_and_redis_keep_the_books(shared_postgres, tmp_path):
    ensure_admin(shared_postgres, tmp_path, SERVER_REDIS_URL)
    env = server_env(shared_postgres, SERVER_REDIS_URL, tmp_path)
    with (
        ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "a.log") as a,
        ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "b.log") as b,
    ):
        http = ServersClient([a.url, b.url], timeout=60, seed=3)
        admin = Party("admin", http.login("admin"))
        parties = setup_parties(http, admin, count=16, funding=400, password=DEFAULT_PASSWORD)
        result = run_workload(http, admin, parties, operations=2500, threads=16, seed=11)
        assert not result.unexpected, result.unexpected[:5]
        assert not result.replay_mismatches, result.replay_mismatches[:5]
        assert result.statuses[201] > 1000 and result.statuses[409] > 0
        container, verifier = _verifier(shared_postgres, tmp_path)
        try:
            assert_books_balance(http, admin, parties, verifier)
        finally:
            container.database().dispose()


@pytest.mark.e2e
def test_one_server_on_sqlite_keeps_the_books(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    ensure_admin(database_url, tmp_path)
    env = server_env(database_url, "memory://", tmp_path)
    with ServerProcess(env, workers=1, threads=8, log_path=tmp_path / "server.log") as server:
        http = ServersClient([server.url], timeout=60, seed=5)
        admin = Party("admin", http.login("admin"))
        parties = setup_parties(http, admin, count=10, funding=400, password=DEFAULT_PASSWORD)
        result = run_workload(http, admin, parties, operations=1200, threads=8, seed=13)
        assert not result.unexpected, result.unexpected[:5]
        assert not result.replay_mismatches, result.replay_mismatches[:5]
        container, verifier = _verifier(database_url, tmp_path)
        try:
            assert_books_balance(http, admin, parties, verifier)
        finally:
            container.database().dispose()
