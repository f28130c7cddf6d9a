"""Module lifecycle: graph checks before any call, initialize in load order, failure isolation,
status reporting, runtime look-ups, shutdown in reverse order, and no state leaking between apps.

Fakes are injected with provider overrides on the `container` fixture before `app` is built.
"""

from __future__ import annotations

import time

import pytest
from dependency_injector import providers

from app import build_container, create_app
from app.http.api import CreditApi
from app.infrastructure.cache import MemoryCache, RedisCache
from app.infrastructure.database import Database
from app.kernel import findings as codes
from app.kernel.findings import WiringError
from app.modules.connection_api import ConnectionApiModule
from app.modules.wallet_module import WalletModule
from app.testing import FakeCache, assert_error
from tests import fixtures_modules
from tests.helpers import FailingWallet, as_admin, as_user

SHIPPED_ORDER = [
    "connection_api",
    "user_management",
    "audit_module",
    "wallet_module",
    "notification_module",
    "transactions_module",
    "integration_module",
    "reporting_module",
]
FX = "tests.fixtures_modules"
CYCLE = f"{FX}.cycle:Alpha,{FX}.cycle:Beta,{FX}.cycle:Gamma"


@pytest.fixture(autouse=True)
def _clean_records():
    fixtures_modules.reset()
    yield
    fixtures_modules.reset()


class RefusingWallet(WalletModule):
    def initialize(self) -> bool:
        return False


class RecordingCache(MemoryCache):
    """A real memory cache that records being built."""

    def __init__(self) -> None:
        fixtures_modules.record("cache.__init__")
        super().__init__()


class RecordingApi(CreditApi):
    """The real API object, recording being built."""

    def __init__(self, *args, **kwargs) -> None:
        fixtures_modules.record("api.__init__")
        super().__init__(*args, **kwargs)


record_infrastructure = pytest.mark.credit_override(cache=RecordingCache, api=RecordingApi)


# -- graph first, then call ---------------------------------------------------------------
@pytest.mark.credit_settings(modules_extra=CYCLE)
@record_infrastructure
def test_cycle_raises_wiring_error_before_any_provider_is_called(settings, container):
    with pytest.raises(WiringError) as caught:
        create_app(settings, container=container)
    assert [f.message for f in caught.value.findings if f.code == codes.CYCLE] == [
        "dependency cycle: alpha -> beta -> gamma -> alpha"
    ]
    assert "alpha -> beta -> gamma -> alpha" in str(caught.value)
    # No module constructor and no infrastructure provider ran.
    assert fixtures_modules.EVENTS == []


@record_infrastructure
def test_recording_cache_is_built_when_the_graph_is_clean(app):
    """Counterpart of the test above: the recorders do record when providers are called."""
    assert sorted(fixtures_modules.EVENTS) == ["api.__init__", "cache.__init__"]


@pytest.mark.credit_settings(modules_extra=f"{FX}.problems:RoutesA,{FX}.problems:RoutesB")
def test_route_collision_between_modules_raises_wiring_error(settings, container):
    with pytest.raises(WiringError) as caught:
        create_app(settings, container=container)
    [finding] = caught.value.findings
    assert finding.code == codes.ROUTE_COLLISION == "MOD-E006"
    assert finding.module == "routes_b"
    assert "GET /collide" in finding.message and "routes_a" in finding.message


@pytest.mark.credit_settings(modules_extra=f"{FX}.lifecycle:Recorder,{FX}.problems:RoutesA,{FX}.problems:RoutesB")
def test_modules_built_before_a_route_collision_are_shut_down(settings, container):
    with pytest.raises(WiringError):
        create_app(settings, container=container)
    # recorder loads before routes_b (ties by name), so it was built and must be released.
    assert fixtures_modules.EVENTS == ["recorder.__init__", "recorder.initialize", "recorder.shutdown"]


@pytest.mark.credit_settings(modules_extra=f"{FX}.problems:KernelRouteImpostor")
def test_module_route_shadowing_a_kernel_route_raises_wiring_error(settings, container):
    with pytest.raises(WiringError) as caught:
        create_app(settings, container=container)
    [finding] = caught.value.findings
    assert finding.code == codes.ROUTE_COLLISION
    assert finding.message == "GET /health is registered by both kernel and health_impostor"


@pytest.mark.credit_settings(modules_extra=f"{FX}.problems:NeedsMissing")
def test_unresolved_parameter_stops_create_app(settings, container):
    with pytest.raises(WiringError) as caught:
        create_app(settings, container=container)
    assert [f.code for f in caught.value.findings] == [codes.UNRESOLVED_PARAMETER]


@pytest.mark.credit_settings(modules_extra=f"{FX}.problems:Lazy")
def test_warnings_do_not_stop_create_app(app):
    manager = app.module_manager
    assert [f.code for f in manager.findings] == [codes.UNUSED_DEPENDENCY]
    assert manager.is_module_loaded("lazy")


# -- load order and status ----------------------------------------------------------------------
def test_shipped_modules_initialize_in_order(app, client):
    manager = app.module_manager
    assert manager.load_order == SHIPPED_ORDER
    assert {n: s.status for n, s in manager.states.items()} == dict.fromkeys(SHIPPED_ORDER, "initialized")
    body = client.get("/modules/status").get_json()
    assert body["load_order"] == SHIPPED_ORDER
    for position, name in enumerate(SHIPPED_ORDER):
        info = body["modules"][name]
        assert info["status"] == "initialized"
        assert info["load_position"] == position
        assert isinstance(info["init_ms"], float) and info["init_ms"] >= 0
    assert body["modules"]["wallet_module"]["dependencies"] == ["connection_api", "user_management"]
    assert body["modules"]["user_management"]["dependents"] == [
        "audit_module",
        "wallet_module",
        "notification_module",
        "transactions_module",
        "integration_module",
        "reporting_module",
    ]


@pytest.mark.credit_settings(modules_extra=f"{FX}.lifecycle:RecorderTop,{FX}.lifecycle:Recorder")
def test_initialize_runs_in_load_order_and_shutdown_in_reverse(app):
    manager = app.module_manager
    order = manager.load_order
    assert order == [
        "connection_api",
        "recorder",
        "user_management",
        "audit_module",
        "wallet_module",
        "notification_module",
        "recorder_top",
        "transactions_module",
        "integration_module",
        "reporting_module",
    ]
    assert fixtures_modules.EVENTS == ["recorder.__init__", "recorder.initialize", "recorder_top.initialize"]

    shut: list[str] = []
    for name in order:
        instance = manager.get_module(name)
        original = instance.shutdown

        def recording(name=name, original=original):
            shut.append(name)
            original()

        instance.shutdown = recording
    fixtures_modules.reset()
    manager.shutdown()
    assert shut == list(reversed(order))
    assert fixtures_modules.EVENTS == ["recorder_top.shutdown", "recorder.shutdown"]


def test_one_failing_shutdown_does_not_stop_the_others(app):
    manager = app.module_manager
    shut: list[str] = []
    for name in manager.load_order:
        instance = manager.get_module(name)
        original = instance.shutdown

        def recording(name=name, original=original):
            shut.append(name)
            if name == "wallet_module":
                raise RuntimeError("cannot release")
            original()  # connection_api's releases the database connection opened at start

        instance.shutdown = recording
    manager.shutdown()
    assert shut == list(reversed(SHIPPED_ORDER))


@pytest.mark.credit_override(wallet_module=FailingWallet)
def test_failing_initialize_isolates_the_module_and_skips_its_dependents(app):
    manager = app.module_manager
    statuses = {name: manager.states[name].status for name in manager.load_order}
    assert statuses == {
        "connection_api": "initialized",
        "user_management": "initialized",
        "audit_module": "initialized",
        "wallet_module": "failed",
        "notification_module": "skipped",
        "transactions_module": "skipped",
        "integration_module": "skipped",
        "reporting_module": "skipped",
    }
    assert manager.get_module_status("wallet_module")["reason"] == "RuntimeError: wallet backend exploded"
    assert manager.get_module_status("transactions_module")["reason"] == "dependency wallet_module failed"
    assert manager.get_module_status("user_management")["reason"] is None
    # The failed module was built (and will be shut down); the skipped one never was.
    assert isinstance(manager.states["wallet_module"].instance, FailingWallet)
    assert manager.states["transactions_module"].instance is None
    assert manager.states["transactions_module"].init_ms is None

    client = app.test_client()
    assert client.get("/livez").status_code == 200  # still serving
    anonymous = client.get("/modules/status")
    assert anonymous.status_code == 200
    assert {n: m["status"] for n, m in anonymous.get_json()["modules"].items()} == statuses
    assert all("reason" not in m for m in anonymous.get_json()["modules"].values())
    assert "exploded" not in anonymous.get_data(as_text=True)

    as_user(app)
    assert "exploded" not in client.get("/modules/status").get_data(as_text=True)

    as_admin(app)
    admin = client.get("/modules/status").get_json()["modules"]
    assert admin["wallet_module"]["reason"] == "RuntimeError: wallet backend exploded"
    assert admin["transactions_module"]["reason"] == "dependency wallet_module failed"
    assert admin["connection_api"]["reason"] is None

    # A failed critical module makes the service unready, but not dead.
    assert client.get("/readyz").status_code == 503
    assert client.get("/health").status_code == 503

    # Its paths, and its dependents', say why instead of a bare 404; the rest serve.
    for method, path, module, status in [
        ("get", "/wallet/balance/someone", "wallet_module", "failed"),
        ("post", "/wallet/deposit", "wallet_module", "failed"),
        ("get", "/transactions", "transactions_module", "skipped"),
    ]:
        response = getattr(client, method)(path)
        error = assert_error(response, 503, "module_unavailable")
        assert error["details"] == {"module": module, "status": status}
        assert response.headers["Retry-After"]
    assert (
        client.post(
            "/users", json={"username": "still", "email": "s@example.com", "password": "long-enough-1"}
        ).status_code
        == 201
    )


@pytest.mark.credit_override(wallet_module=RefusingWallet)
def test_initialize_returning_false_marks_failed(app):
    manager = app.module_manager
    assert manager.states["wallet_module"].status == "failed"
    assert "returned False" in manager.states["wallet_module"].reason
    assert manager.states["transactions_module"].status == "skipped"
    assert manager.states["transactions_module"].reason == "dependency wallet_module failed"
    assert not manager.is_module_loaded("wallet_module")


@pytest.mark.credit_settings(
    modules_extra=f"{FX}.lifecycle:AfterExploding,{FX}.lifecycle:Exploding,{FX}.lifecycle:ConstructorFails"
)
def test_non_critical_failures_degrade_instead_of_unready(app, client):
    manager = app.module_manager
    assert manager.states["exploding"].status == "failed"
    assert manager.states["exploding"].reason == "RuntimeError: optional backend exploded"
    assert manager.states["after_exploding"].status == "skipped"
    assert manager.states["after_exploding"].reason == "dependency exploding failed"
    assert manager.states["constructor_fails"].status == "failed"
    assert manager.states["constructor_fails"].reason == "ValueError: cannot build me"
    assert manager.states["constructor_fails"].instance is None
    assert all(manager.is_module_loaded(n) for n in SHIPPED_ORDER)

    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded"
    assert client.get("/readyz").status_code == 200


@pytest.mark.credit_settings(modules_disabled="user_management")
def test_disabling_a_needed_module_skips_its_dependents(app, client):
    manager = app.module_manager
    assert [f.code for f in manager.findings] == [codes.DISABLED_BUT_NEEDED]
    assert {n: s.status for n, s in manager.states.items()} == {
        "connection_api": "initialized",
        "user_management": "disabled",
        "audit_module": "skipped",
        "wallet_module": "skipped",
        "notification_module": "skipped",
        "transactions_module": "skipped",
        "integration_module": "skipped",
        "reporting_module": "skipped",
    }
    assert manager.states["wallet_module"].reason == "dependency user_management disabled"
    assert manager.states["user_management"].instance is None
    assert manager.get_module("user_management") is None
    as_admin(app)
    modules = client.get("/modules/status").get_json()["modules"]
    assert modules["user_management"]["status"] == "disabled"
    assert modules["user_management"]["reason"] == "disabled by configuration"


@pytest.mark.credit_settings(modules_disabled="integration_module")
def test_disabled_leaf_module_is_left_out(app):
    manager = app.module_manager
    assert manager.findings == []
    assert manager.states["integration_module"].status == "disabled"
    assert manager.get_module("integration_module") is None
    assert all(manager.is_module_loaded(n) for n in SHIPPED_ORDER if n != "integration_module")


# -- runtime look-ups ------------------------------------------------------------------------
def test_runtime_lookups(app, container):
    manager = app.module_manager
    wallet = manager.get_module("wallet_module")
    assert isinstance(wallet, WalletModule)
    # The manager holds the container's singletons, and modules received each other by injection.
    assert wallet is container.wallet_module()
    # Constructor injection: dependents hold the very instances the manager reports.
    assert any(value is wallet for value in vars(manager.get_module("transactions_module")).values())
    connection = manager.get_module("connection_api")
    assert any(value is connection for value in vars(wallet).values())
    assert manager.is_module_loaded("wallet_module")
    assert not manager.is_module_loaded("no_such_module")
    assert manager.get_module("no_such_module") is None

    status = manager.get_module_status("wallet_module")
    assert status["status"] == "initialized"
    assert status["dependencies"] == ["connection_api", "user_management"]
    assert status["dependents"] == [
        "notification_module",
        "transactions_module",
        "integration_module",
        "reporting_module",
    ]
    assert status["load_position"] == SHIPPED_ORDER.index("wallet_module")
    assert status["critical"] is True
    assert status["source"] == "app.modules.wallet_module"
    assert "reason" not in manager.get_module_status("wallet_module", include_reason=False)

    health = manager.get_module_health("wallet_module")
    assert health["module"] == "wallet_module"
    assert health["status"] == "healthy"
    assert health["dependencies"] == {"connection_api": "healthy", "user_management": "healthy"}
    assert health["uptime"] >= 0


def test_init_time_is_recorded_for_every_module(settings_factory, sqlite_template, tmp_path):
    # How fast start-up is belongs to the benchmark (bench/micro.py); here: that it is measured.
    settings = settings_factory(database_url=sqlite_template.fresh(tmp_path), cache_url="memory://")
    started = time.perf_counter()
    app = create_app(settings)
    elapsed_ms = (time.perf_counter() - started) * 1000
    try:
        assert sum(app.module_manager.states[n].init_ms for n in SHIPPED_ORDER) <= elapsed_ms
        states = app.module_manager.states
        assert all(states[n].status == "initialized" for n in SHIPPED_ORDER)
        for name in SHIPPED_ORDER:
            assert isinstance(states[name].init_ms, float)
            assert 0 <= states[name].init_ms <= elapsed_ms
    finally:
        app.module_manager.shutdown()


# -- no state leaking between apps ---------------------------------------------------------------
def test_overrides_and_extras_end_with_their_app(settings_factory):
    """Two apps built one after the other: the first overrides the cache and wires an extra
    module, the second (nothing overridden) gets the real providers and no extra."""
    from containers import Container

    first_settings = settings_factory(modules_extra=f"{FX}.problems:Plain")
    first_container = build_container(first_settings)
    first_container.cache.override(providers.Singleton(FakeCache))
    first = create_app(first_settings, container=first_container)
    try:
        assert isinstance(first.module_manager.get_module("connection_api").cache, FakeCache)
        assert first.module_manager.is_module_loaded("plain") and "plain" in first_container.providers
    finally:
        first.module_manager.shutdown()
        first_container.reset_singletons()

    second_settings = settings_factory()
    second = create_app(second_settings)
    try:
        connection = second.module_manager.get_module("connection_api")
        assert isinstance(connection, ConnectionApiModule)
        assert isinstance(connection.cache, MemoryCache if second_settings.cache_url == "memory://" else RedisCache)
        assert type(connection.database) is Database
        assert second.module_manager.load_order == SHIPPED_ORDER
        assert not second.container.cache.overridden
        assert "plain" not in second.container.providers
        # Overrides and extras live on the first app's container instance, never on the class.
        assert "plain" not in Container.providers
        assert [name for name, provider in Container.providers.items() if provider.overridden] == []
    finally:
        second.module_manager.shutdown()


def test_each_container_is_independent(settings):
    first, second = build_container(settings), build_container(settings)
    first.cache.override(providers.Singleton(FakeCache))
    try:
        assert not second.cache.overridden
        assert isinstance(first.cache(), FakeCache)
        assert not isinstance(second.cache(), FakeCache)
    finally:
        first.cache.reset_override()
        first.reset_singletons()
        second.cache().close()
        second.reset_singletons()
