"""Fixtures: a fresh database and cache per test, an app built from an overridable container."""

from __future__ import annotations

import os

import pytest
from dependency_injector import providers

from app import build_container, create_app
from app.config import load_settings
from app.services.passwords import Passwords
from tests import backends
from tests.helpers import METRICS_TOKEN

BACKEND = os.environ.get("CREDIT_TEST_BACKEND", "sqlite")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    return backends.SqliteTemplate(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def postgres_database():
    """One PostgreSQL database for the whole run, dropped at the end."""
    try:
        backends.check_postgres()
    except Exception as exc:
        backends.unavailable("PostgreSQL", exc)
    database = backends.PostgresDatabase()
    database.create()
    yield database
    database.drop()


@pytest.fixture(scope="session")
def redis_url():
    try:
        backends.check_redis()
    except Exception as exc:
        backends.unavailable("Redis", exc)
    return backends.REDIS_URL


@pytest.fixture
def backend_urls(request, tmp_path, sqlite_template):
    """(database_url, cache_url) for this test on the selected backend, emptied first."""
    if BACKEND == "postgres":
        database = request.getfixturevalue("postgres_database")
        cache_url = request.getfixturevalue("redis_url")
        database.reset()
        backends.flush_redis(cache_url)
        return database.url, cache_url
    return sqlite_template.fresh(tmp_path), "memory://"


@pytest.fixture
def settings_factory(tmp_path, backend_urls):
    database_url, cache_url = backend_urls

    def make(**overrides):
        values = dict(
            database_url=database_url,
            cache_url=cache_url,
            secret_key="test-secret-key-0123456789abcdef",
            instance_path=str(tmp_path),
            login_max_failures=5,
            metrics_token=METRICS_TOKEN,
        )
        values.update(overrides)
        return load_settings(environ={}, **values)

    return make


@pytest.fixture
def settings(settings_factory):
    return settings_factory()


@pytest.fixture
def container(settings):
    """The real container; override providers on it before asking for `app`."""
    container = build_container(settings)
    # Real Argon2id, at a cost that keeps hundreds of registrations fast.
    container.passwords.override(providers.Singleton(Passwords, time_cost=1, memory_cost=1024))
    yield container
    container.unwire()
    container.reset_singletons()


@pytest.fixture
def app(settings, container):
    app = create_app(settings, container=container)
    app.config["TESTING"] = True
    yield app
    app.module_manager.shutdown()


@pytest.fixture
def client(app):
    return app.test_client()
