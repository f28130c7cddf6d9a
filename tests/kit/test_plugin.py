"""The credit-system pytest plugin (app/testing), used as a module author uses it: its fixtures
by their public names, its markers, its helpers and fakes. The whole suite runs on the same
fixtures; these tests pin what the plugin itself promises."""

from __future__ import annotations

import pytest
from dependency_injector import providers

from app.infrastructure.cache import Cache
from app.infrastructure.database import Database
from app.modules.wallet_module import WalletModule
from app.testing import DEFAULT_PASSWORD, FakeCache, People, assert_error, credit_env, failing, ledger_snapshot

pytestmark = pytest.mark.credit_settings(token_ttl=120)  # every test's app, unless a test says otherwise


def test_people_are_logged_in_with_their_roles(credit_client, people):
    for person, role in ((people.admin, "admin"), (people.alice, "user"), (people.bob, "user")):
        me = credit_client.get("/users/me", headers=person.headers)
        assert me.status_code == 200
        assert (me.get_json()["id"], me.get_json()["username"], me.get_json()["role"]) == (
            person.id,
            person.username,
            role,
        )
        assert person.headers == {"Authorization": f"Bearer {person.token}"}
    assert len({people.admin.id, people.alice.id, people.bob.id}) == 3


def test_fund_deposits_as_the_admin_and_add_makes_more_people(credit_app, credit_client, people):
    deposit = people.fund(people.alice, 70, description="starting balance")
    assert (deposit["type"], deposit["amount"], deposit["to_user_id"]) == ("deposit", 70, people.alice.id)
    carol = people.add("carol")
    root = people.add_admin("root")
    assert people.carol is carol and people["root"] is root and root.role == "admin"
    with pytest.raises(AttributeError):
        people.dave  # noqa: B018  (nobody of that name was made)
    assert ledger_snapshot(credit_app)["balances"] == {
        people.admin.id: 0,
        people.alice.id: 70,
        people.bob.id: 0,
        carol.id: 0,
        root.id: 0,
    }
    answer = credit_client.get(f"/wallet/balance/{people.bob.id}", headers=carol.headers)
    assert_error(answer, 403, "forbidden")


def test_each_test_starts_from_an_empty_database(credit_app):
    # The previous tests made users and money; none of it is here.
    assert ledger_snapshot(credit_app) == {"transactions": 0, "entries": 0, "idempotency_keys": 0, "balances": {}}


def test_the_environment_is_not_read(credit_settings_factory, monkeypatch):
    monkeypatch.setenv("CREDIT_TOKEN_TTL", "7")
    monkeypatch.setenv("CREDIT_MODULES_DISABLED", "transactions_module")
    settings = credit_settings_factory()
    assert (settings.token_ttl, settings.modules_disabled) == (3600, ())


@pytest.mark.credit_settings(modules_disabled="transactions_module")
def test_credit_settings_markers_merge_the_closest_winning(credit_settings, credit_app):
    assert credit_settings.token_ttl == 120  # from the module's marker
    assert credit_settings.modules_disabled == ("transactions_module",)
    assert credit_app.settings is credit_settings
    assert credit_app.module_manager.states["transactions_module"].status == "disabled"


@pytest.mark.credit_settings(token_ttl=60)
def test_a_test_marker_overrides_the_modules(credit_settings):
    assert credit_settings.token_ttl == 60


class CountingDatabase(Database):
    """The real database, counting units of work."""

    def __init__(self, engine, bus) -> None:
        super().__init__(engine, bus)
        self.units = 0

    def unit_of_work(self, *args, **kwargs):
        self.units += 1
        return super().unit_of_work(*args, **kwargs)


FailingWallet = failing(WalletModule, "no wallets today")


@pytest.mark.credit_override(database=CountingDatabase, cache=FakeCache, wallet_module=FailingWallet)
def test_credit_override_takes_subclasses_classes_and_objects(credit_app, credit_client):
    database, cache = credit_app.container.database(), credit_app.container.cache()
    # A subclass of what the provider builds gets the provider's own arguments ...
    assert type(database) is CountingDatabase and database.engine is credit_app.container.engine()
    # ... any other class is built without arguments, one per test.
    assert type(cache) is FakeCache and credit_app.module_manager.get_module("connection_api").cache is cache
    states = credit_app.module_manager.states
    assert (states["wallet_module"].status, states["wallet_module"].reason) == (
        "failed",
        "RuntimeError: no wallets today",
    )
    assert isinstance(states["wallet_module"].instance, FailingWallet)
    database.units = 0
    signed_up = credit_client.post("/users", json={"username": "eve", "email": "e@x.org", "password": DEFAULT_PASSWORD})
    assert signed_up.status_code == 201 and database.units > 0


SHARED_FAKE = FakeCache(down=True)


@pytest.mark.credit_override(cache=SHARED_FAKE)
def test_an_object_is_served_as_it_is(credit_app, credit_client):
    assert credit_app.container.cache() is SHARED_FAKE
    assert credit_client.get("/health").get_json()["status"] == "degraded"


class TestOverridingTheFixture:
    @pytest.fixture
    def credit_container(self, credit_container):
        """What a module author writes to override a provider for every test of a file."""
        credit_container.cache.override(providers.Singleton(FakeCache, down=True))
        return credit_container

    def test_it_runs_before_the_app_is_built(self, credit_app, credit_client):
        cache = credit_app.container.cache()
        assert isinstance(cache, FakeCache) and credit_app.module_manager.get_module("connection_api").cache is cache
        assert credit_client.get("/health").get_json()["status"] == "degraded"


def test_fake_cache_is_a_cache():
    assert isinstance(FakeCache(), Cache)


def test_the_app_factory_builds_more_apps_on_the_same_database(credit_app_factory, people):
    other = credit_app_factory(configure=lambda container: container.cache.override(providers.Object(FakeCache())))
    assert isinstance(other.container.cache(), FakeCache)
    me = other.test_client().get("/users/me", headers=people.alice.headers)
    assert me.status_code == 200 and me.get_json()["id"] == people.alice.id


def test_credit_cli_runs_commands_against_the_tests_database(credit_cli, credit_settings, people, tmp_path):
    people.fund(people.bob, 5)
    result = credit_cli("ledger", "verify")
    assert result.exit_code == 0, result.output
    assert "transactions: 1" in result.output and "ledger ok" in result.output
    assert credit_cli.env == credit_env(credit_settings)
    assert credit_cli.env["CREDIT_TOKEN_TTL"] == "120" and credit_cli.env["CREDIT_CONFIG"] is None
    assert credit_cli.env["CREDIT_MODULES_EXTRA"] is None  # removed: nothing leaks from outside
    elsewhere = credit_cli("ledger", "verify", CREDIT_DATABASE_URL=f"sqlite:///{tmp_path / 'never-migrated.db'}")
    assert elsewhere.exit_code == 1 and "not migrated" in elsewhere.output


def test_people_is_a_public_class(credit_app, credit_client):
    team = People(credit_app, credit_client)
    assert team.admin.role == "admin" and team.alice.username == "alice"
