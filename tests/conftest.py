"""The suite runs on the credit-system pytest plugin (app/testing, the package's `pytest11`
entry point): a fresh database and cache per test, an app built from an overridable container.

This file only adds what the project needs beyond it: PostgreSQL + Redis instead of SQLite
when CREDIT_TEST_BACKEND=postgres, a metrics scrape token, and the short names the suite
uses for the plugin's fixtures (`app` is `credit_app`, ...). To change a fixture for some
tests, override the plugin's `credit_*` one: the short names only hand it on.
"""

from __future__ import annotations

import functools
import os

import pytest

from tests import backends
from tests.helpers import METRICS_TOKEN

BACKEND = os.environ.get("CREDIT_TEST_BACKEND", "sqlite")


ALIASES = ("settings_factory", "settings", "container", "app", "client")


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("credit_system"):
        raise pytest.UsageError(
            "the credit_system pytest plugin is not installed: run `make .venv/.installed` (pip install -e '.[dev]')"
        )


def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    """A file overriding `settings` (or `app`, ...) while its tests run on the plugin's chain
    would be ignored by it: the plugin's `credit_app` is built from `credit_settings`."""
    for item in items:
        used = getattr(item, "fixturenames", ())
        for name in ALIASES:
            defined = session._fixturemanager.getfixturedefs(name, item)
            if defined and defined[-1].func.__module__ != __name__ and f"credit_{name}" in used:
                raise pytest.UsageError(
                    f"{item.nodeid}: its `{name}` fixture overrides this conftest's alias, which the plugin's "
                    f"fixtures never see; override `credit_{name}` instead (or use a credit_settings marker)"
                )


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


if BACKEND == "postgres":

    @pytest.fixture
    def credit_database_url(postgres_database):
        """The run's PostgreSQL database, emptied for this test."""
        postgres_database.reset()
        return postgres_database.url

    @pytest.fixture
    def credit_cache_url(redis_url):
        """The suite's Redis database, flushed for this test."""
        backends.flush_redis(redis_url)
        return redis_url


@pytest.fixture
def credit_settings_factory(credit_settings_factory):
    """The plugin's, with the scrape token the metrics tests use."""
    return functools.partial(credit_settings_factory, metrics_token=METRICS_TOKEN)


# -- the suite's names for the plugin's fixtures --------------------------------------------------


@pytest.fixture
def backend_urls(credit_database_url, credit_cache_url):
    """(database_url, cache_url) of this test on the selected backend."""
    return credit_database_url, credit_cache_url


@pytest.fixture(scope="session")
def sqlite_template(credit_sqlite_template):
    return credit_sqlite_template


@pytest.fixture
def settings_factory(credit_settings_factory):
    return credit_settings_factory


@pytest.fixture
def settings(credit_settings):
    return credit_settings


@pytest.fixture
def container(credit_container):
    return credit_container


@pytest.fixture
def app(credit_app):
    return credit_app


@pytest.fixture
def client(credit_client):
    return credit_client
