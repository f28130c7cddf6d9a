"""A database whose schema is not the code's (never migrated, or at a revision this code does
not know): an error in the log at start, /readyz saying why, requests answered 503 saying
the schema is not migrated (not a 500, not "database unavailable"), and serving as soon as
an operator has run `credit-system db upgrade`, without a restart."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, text

from app.infrastructure import database as database_module
from app.infrastructure.database_url import masked_url
from app.infrastructure.migrations import head_revision, known_revisions, upgrade
from app.testing import DEFAULT_PASSWORD
from tests import backends
from tests.conftest import BACKEND

USER = {"username": "alice", "email": "alice@example.com", "password": DEFAULT_PASSWORD}
UNKNOWN_REVISION = "fffffffffff0"


@pytest.fixture
def empty_database_url(tmp_path):
    """A reachable database on the selected backend that was never migrated."""
    if BACKEND != "postgres":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    try:
        backends.check_postgres()
    except Exception as exc:
        backends.unavailable("PostgreSQL", exc)
    database = backends.PostgresDatabase()
    database.create(migrate=False)
    try:
        yield database.url
    finally:
        database.drop()


@pytest.fixture
def start(credit_app_factory, caplog):
    """start(database_url) -> the app built on it; its start-up log records are in caplog."""

    def build(database_url: str):
        with caplog.at_level(logging.INFO):
            return credit_app_factory(database_url=database_url, health_cache_seconds=0)

    return build


def stamp(database_url: str, revision: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
    engine.dispose()


def assert_schema_refusal(response, problem: str) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["message"].startswith(problem + ";"), error["message"]
    assert response.headers["Retry-After"] == "30"


def test_the_start_logs_an_error_naming_the_command_and_the_database(start, empty_database_url, caplog):
    start(empty_database_url)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        f"database schema not migrated: run `credit-system db upgrade` (database {masked_url(empty_database_url)})"
    ]


def test_requests_that_need_the_database_are_503_saying_the_schema_is_not_migrated(start, empty_database_url):
    client = start(empty_database_url).test_client()
    assert_schema_refusal(client.post("/users", json=USER), "database schema not migrated")
    assert_schema_refusal(
        client.post("/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}),
        "database schema not migrated",
    )
    assert client.get("/livez").status_code == 200


def test_readyz_says_why_to_anyone(start, empty_database_url):
    app = start(empty_database_url)
    ready = app.test_client().get("/readyz")
    assert (ready.status_code, ready.get_json()) == (
        503,
        {"status": "not_ready", "reason": "database schema not migrated"},
    )
    details = app.module_manager.get_module_health("connection_api")["details"]
    assert details["error"] == "database schema not migrated: run `credit-system db upgrade`"


def test_it_serves_once_migrated_without_a_restart(start, empty_database_url, monkeypatch):
    client = start(empty_database_url).test_client()
    assert client.post("/users", json=USER).status_code == 503
    upgrade(empty_database_url)
    monkeypatch.setattr(database_module, "SCHEMA_RECHECK_SECONDS", 0)  # instead of waiting a second
    assert client.post("/users", json=USER).status_code == 201
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_while_not_migrated_the_schema_is_read_at_most_once_a_second(start, empty_database_url):
    app = start(empty_database_url)
    database = app.container.database()
    reads = []
    read = database.schema
    database.schema = lambda: reads.append(1) or read()
    client = app.test_client()
    for _ in range(5):
        assert client.post("/users", json=USER).status_code == 503
    assert len(reads) <= 2  # the start-up read is reused, and renewed at most once in the second after it


def test_an_older_revision_is_refused_until_upgraded(start, empty_database_url, caplog, monkeypatch):
    first = min(known_revisions())
    assert first != head_revision(), "needs two migrations"
    upgrade(empty_database_url, first)
    app = start(empty_database_url)
    problem = f"database schema out of date (at revision {first}, this code needs {head_revision()})"
    assert any(
        r.levelno == logging.ERROR and r.getMessage().startswith(f"{problem}: run `credit-system db upgrade`")
        for r in caplog.records
    )
    client = app.test_client()
    assert_schema_refusal(client.post("/users", json=USER), problem)
    assert client.get("/readyz").get_json()["reason"] == problem
    upgrade(empty_database_url)
    monkeypatch.setattr(database_module, "SCHEMA_RECHECK_SECONDS", 0)
    assert client.post("/users", json=USER).status_code == 201


def test_a_revision_this_code_does_not_know_is_refused_too(start, empty_database_url, caplog):
    upgrade(empty_database_url)
    stamp(empty_database_url, UNKNOWN_REVISION)
    app = start(empty_database_url)
    problem = f"database schema at revision {UNKNOWN_REVISION}, which this code does not know (a newer release?)"
    assert any(r.levelno == logging.ERROR and r.getMessage().startswith(problem) for r in caplog.records)
    assert_schema_refusal(app.test_client().post("/users", json=USER), problem)
    assert app.test_client().get("/readyz").get_json()["reason"] == problem
    stamp(empty_database_url, head_revision())
    assert app.test_client().get("/readyz").status_code == 200


def test_an_unreachable_database_at_start_is_a_warning_without_the_password(start, caplog):
    url = "postgresql+psycopg://app:s3cret@127.0.0.1:1/credit"  # port 1: refused at once
    app = start(url)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "database postgresql+psycopg://app:***@127.0.0.1:1/credit unreachable at start: OperationalError" in warnings
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
    client = app.test_client()
    refused = client.post("/users", json=USER)
    assert (refused.status_code, refused.get_json()["error"]["message"]) == (
        503,
        "the database is unavailable; retry later",
    )
    assert client.get("/readyz").get_json() == {"status": "not_ready", "reason": "database unreachable"}
