"""The credit-system pytest plugin: an app on a fresh database per test, a container to
override before the app is built, logged-in users, and the fakes and checks to go with them.

Installed with the package and active in every pytest run of its environment (the `pytest11`
entry point `credit_system`; `-p no:credit_system` turns it off). Nothing in the app imports
it. `pytest --fixtures` lists its fixtures with these docstrings:

- `credit_app`, `credit_client`: the app (and its Flask test client) built for this test;
- `credit_container`: the container `credit_app` is built from; override providers on it
  before the app is built (in a fixture, or with `@pytest.mark.credit_override(...)`);
- `credit_settings` (`@pytest.mark.credit_settings(...)` changes them), `credit_settings_factory`;
- `credit_app_factory`: more apps, on the same database unless told otherwise;
- `people`: `admin`, `alice` and `bob` logged in (`.id`, `.username`, `.token`, `.headers`),
  `people.fund(person, amount)`, `people.add(name)`;
- `credit_cli`: `credit-system` commands against this test's database;
- `credit_database_url`, `credit_cache_url`: where the test's data lives. SQLite (a copy of
  `credit_sqlite_template`, migrated once per session) and the in-process cache by default; override
  these two fixtures in a conftest to run on PostgreSQL and Redis (the database migrated
  and emptied for each test, as the project's own tests/conftest.py does).

Plain helpers, importable from here: `FakeCache`, `assert_error`, `ledger_snapshot`,
`rewired`, `failing`, `credit_env`, `register`, `login`, `bearer`, `make_admin`, and
`deliver_events` (relay and drain every pending event now; app.events.testing).
"""

from __future__ import annotations

import difflib

import pytest
from dependency_injector import providers

from app.events.testing import deliver_events
from app.testing.database import SqliteTemplate
from app.testing.fakes import FakeCache
from app.testing.helpers import assert_error, credit_env, failing, ledger_snapshot, rewired
from app.testing.people import DEFAULT_PASSWORD, People, Person, bearer, login, make_admin, register

__all__ = [
    "DEFAULT_PASSWORD",
    "FakeCache",
    "People",
    "Person",
    "SqliteTemplate",
    "TEST_SECRET_KEY",
    "assert_error",
    "bearer",
    "cheap_passwords",
    "credit_env",
    "deliver_events",
    "failing",
    "ledger_snapshot",
    "login",
    "make_admin",
    "register",
    "rewired",
]

TEST_SECRET_KEY = "test-secret-key-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "credit_settings(**overrides): build this test's credit_settings (and app) with these settings"
    )
    config.addinivalue_line(
        "markers",
        "credit_override(**replacements): override these providers of credit_container before the app is built "
        "(a provider; a subclass of what the provider builds, given its arguments; another class, built once; "
        "any other object, served as it is)",
    )


def cheap_passwords() -> providers.Provider:
    """Real Argon2id at a cost that keeps hundreds of sign-ups and logins fast."""
    from app.services.passwords import Passwords

    return providers.Singleton(Passwords, time_cost=1, memory_cost=1024)


def _marked(request: pytest.FixtureRequest, name: str) -> dict:
    """The keyword arguments of every `name` marker on the test, the closest winning."""
    merged: dict = {}
    for marker in reversed(list(request.node.iter_markers(name))):
        if marker.args:
            pytest.fail(f"@pytest.mark.{name} takes keyword arguments only", pytrace=False)
        merged.update(marker.kwargs)
    return merged


def _container(settings):
    from app import build_container

    container = build_container(settings)
    container.passwords.override(cheap_passwords())
    return container


def _release(container) -> None:
    container.unwire()
    container.reset_singletons()


def _build(settings, container):
    from app import create_app

    app = create_app(settings, container=container)
    app.config["TESTING"] = True
    return app


def _replacement(provider, replacement) -> providers.Provider:
    """What `credit_override(name=replacement)` puts in place of `provider`: see credit_container."""
    if isinstance(replacement, providers.Provider):
        return replacement
    if isinstance(replacement, type):
        built = getattr(provider, "provides", None)
        if isinstance(built, type) and issubclass(replacement, built):
            return rewired(provider, replacement)
        return providers.Singleton(replacement)
    return providers.Object(replacement)


def _overrides(container) -> dict[str, set[int]]:
    return {name: {id(p) for p in provider.overridden} for name, provider in container.providers.items()}


# -- where the data lives ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def credit_sqlite_template(tmp_path_factory) -> SqliteTemplate:
    """The migrated SQLite database each test's `credit_database_url` is a copy of (migrated once
    per session)."""
    return SqliteTemplate(tmp_path_factory.mktemp("credit-template"))


@pytest.fixture
def credit_database_url(credit_sqlite_template, tmp_path) -> str:
    """This test's database URL: a fresh copy of the migrated SQLite template. Override this
    fixture to use another database; it must be migrated and empty for each test."""
    return credit_sqlite_template.fresh(tmp_path)


@pytest.fixture
def credit_cache_url() -> str:
    """This test's cache URL: `memory://`, a cache of the app's own. Override this fixture to use
    Redis (flush its database for each test)."""
    return "memory://"


# -- settings, container, app --------------------------------------------------------------------


@pytest.fixture
def credit_settings_factory(credit_database_url, credit_cache_url, tmp_path):
    """make(**overrides) -> Settings on this test's database and cache, with a fixed test
    signing key and `tmp_path` as the instance folder. CREDIT_* variables of the environment
    are not read."""
    from app.config import load_settings

    def make(**overrides):
        values = dict(
            database_url=credit_database_url,
            cache_url=credit_cache_url,
            secret_key=TEST_SECRET_KEY,
            instance_path=str(tmp_path),
            queue_url="memory://",  # the immediate queue: events are delivered right after each commit
        )
        values.update(overrides)
        return load_settings(environ={}, **values)

    return make


@pytest.fixture
def credit_settings(credit_settings_factory, request):
    """The settings `credit_container` and `credit_app` are built from; change them for a test
    (or a module, through `pytestmark`) with `@pytest.mark.credit_settings(name=value, ...)`."""
    return credit_settings_factory(**_marked(request, "credit_settings"))


@pytest.fixture
def credit_container(credit_settings, request):
    """The real container `credit_app` is built from, with cheap Argon2 parameters. Override
    providers on it BEFORE the app is built: in a fixture that takes `credit_container` (or
    overrides it), or with `@pytest.mark.credit_override(cache=FakeCache(), ...)`. An override
    made after the app was built would never reach it: the test then fails, saying so.

    `credit_override(name=value)` takes a provider as it is; a subclass of the class the
    provider builds (a module that fails, say), built with the provider's own arguments; any
    other class, built without arguments once per test (`cache=FakeCache`); any other object,
    served as it is (`cache=FakeCache(down=True)`)."""
    container = _container(credit_settings)
    for name, replacement in _marked(request, "credit_override").items():
        if name not in container.providers:
            close = difflib.get_close_matches(name, list(container.providers), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            pytest.fail(f"credit_override: the container has no provider {name!r}{hint}", pytrace=False)
        getattr(container, name).override(_replacement(getattr(container, name), replacement))
    yield container
    _release(container)


@pytest.fixture
def credit_app(credit_settings, credit_container):
    """The app built from `credit_container` for this test; its modules are shut down afterwards."""
    app = _build(credit_settings, credit_container)
    built_with = _overrides(credit_container)
    yield app
    app.module_manager.shutdown()
    late = sorted(name for name, ids in _overrides(credit_container).items() if ids - built_with.get(name, set()))
    if late:
        pytest.fail(
            f"credit_container.{', '.join(late)} overridden after the app was built: the app never used the "
            "override. Override in a fixture that runs before credit_app, or with @pytest.mark.credit_override.",
            pytrace=False,
        )


@pytest.fixture
def credit_client(credit_app):
    """The Flask test client of `credit_app`."""
    return credit_app.test_client()


@pytest.fixture
def credit_app_factory(credit_settings_factory):
    """make(configure=None, **settings) -> another app, built like `credit_app` on this test's
    database unless the settings say otherwise; `configure(container)` runs before it is built
    (to override providers). Every app made is shut down at the end of the test."""
    built = []

    def make(configure=None, **overrides):
        settings = credit_settings_factory(**overrides)
        container = _container(settings)
        built.append((None, container))
        if configure is not None:
            configure(container)
        app = _build(settings, container)
        built[-1] = (app, container)
        return app

    yield make
    for app, container in reversed(built):
        if app is not None:
            app.module_manager.shutdown()
        _release(container)


# -- people and commands -------------------------------------------------------------------------


@pytest.fixture
def people(credit_app, credit_client) -> People:
    """`admin` (made as `credit-system create-admin` does), `alice` and `bob` (signed up through
    the API), each logged in: `.id`, `.username`, `.email`, `.password`, `.token`, `.headers`.
    `people.fund(people.alice, 100)` deposits as the admin; `people.add("carol")` and
    `people.add_admin("root")` make more."""
    return People(credit_app, credit_client)


class CreditCli:
    """Runs `credit-system` commands in process (click's CliRunner) with `env` as their
    environment: exactly the test's settings, no other CREDIT_* variable."""

    def __init__(self, settings) -> None:
        self.env = credit_env(settings)

    def __call__(self, *args: str, **env: str | None):
        """The click Result of `credit-system *args`; `env` adds or replaces variables (None removes one)."""
        from click.testing import CliRunner

        from app.cli import main

        return CliRunner().invoke(main, list(args), env={**self.env, **env}, catch_exceptions=False)


@pytest.fixture
def credit_cli(credit_settings) -> CreditCli:
    """credit_cli("ledger", "verify", CREDIT_X=...) -> click Result: a `credit-system` command run
    in process against this test's database and cache (`credit_cli.env` is its environment)."""
    return CreditCli(credit_settings)
