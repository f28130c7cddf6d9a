"""Test backends: SQLite + memory by default, PostgreSQL + Redis with CREDIT_TEST_BACKEND=postgres.

Each test run creates its own PostgreSQL database and drops it at the end; each test
starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import create_engine, text

from app.infrastructure.migrations import upgrade

PG_ADMIN_URL = os.environ.get("CREDIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CREDIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
IN_CI = os.environ.get("CI", "").lower() == "true"

_ONLY = {"accounts": "kind = 'user'"}  # the system accounts stay
_TABLES = [
    "audit_entries",  # past its append-only trigger with a purge permit, the one DELETE it lets through
    "audit_purge_permits",
    "webhook_deliveries",
    "webhook_endpoints",
    "payment_events",
    "report_counted_events",
    "report_totals",
    "report_activity",
    "report_day_versions",
    "report_kept_buckets",
    "notification_deliveries",
    "notifications",
    "notification_preferences",
    "ledger_entries",
    "transactions",
    "idempotency_keys",
    "event_deliveries",
    "event_subscribers",
    "outbox_events",
    "revoked_tokens",
    "accounts",
    "users",
]


def unavailable(what: str, exc: Exception):
    """A missing service fails the run in CI and skips (visibly) elsewhere."""
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class PostgresDatabase:
    """A throwaway database on the configured PostgreSQL server."""

    def __init__(self, admin_url: str = PG_ADMIN_URL) -> None:
        self.admin_url = admin_url
        self.name = f"credit_test_{uuid.uuid4().hex[:10]}"
        base = admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")

    def create(self, migrate: bool = True) -> str:
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        if migrate:
            upgrade(self.url)
        self._engine = create_engine(self.url)
        return self.url

    def reset(self) -> None:
        """Empty every table but keep the system accounts the migration seeded."""
        with self._engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_purge_permits (id) VALUES ('test-reset')"))
            for table in _TABLES:
                where = f" WHERE {_ONLY[table]}" if table in _ONLY else ""
                conn.execute(text(f"DELETE FROM {table}{where}"))

    def drop(self) -> None:
        self._engine.dispose()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


def check_postgres(admin_url: str = PG_ADMIN_URL) -> None:
    engine = create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def check_redis(url: str = REDIS_URL) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def flush_redis(url: str = REDIS_URL) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def throwaway_postgres(redis_url: str = REDIS_URL):
    """A fresh migrated PostgreSQL database (its URL) and an emptied Redis database, both
    cleaned up afterwards; unreachable services fail under CI and skip elsewhere."""
    try:
        check_postgres()
        check_redis(redis_url)
    except Exception as exc:
        unavailable("PostgreSQL and Redis", exc)
    database = PostgresDatabase()
    database.create()
    flush_redis(redis_url)
    try:
        yield database.url
    finally:
        database.drop()
        flush_redis(redis_url)
