"""Health: /livez touches nothing, /health and /readyz aggregate, per-module health is bounded
by a timeout, briefly cached, and shows details only to admins.

Backends are replaced through provider overrides on the `container` fixture before `app`
is requested (or with the plugin's credit_override marker); the fakes are small hand-written
classes that count their pings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from dependency_injector import providers
from sqlalchemy import event

from app.infrastructure.database import Database
from app.testing import FakeCache
from tests import fixtures_modules
from tests.fixtures_modules.lifecycle import HANG_SECONDS
from tests.helpers import FailingWallet, as_admin, as_user

FX = "tests.fixtures_modules"
SHIPPED = [
    "connection_api",
    "user_management",
    "audit_module",
    "wallet_module",
    "notification_module",
    "transactions_module",
    "integration_module",
    "reporting_module",
]
REQUIRED_KEYS = {"status", "module", "dependencies", "last_check", "uptime"}


@pytest.fixture(autouse=True)
def _clean_records():
    fixtures_modules.reset()
    yield
    fixtures_modules.RELEASE.set()  # let a hanging health check's worker thread finish
    fixtures_modules.EVENTS.clear()


class SwitchableDatabase(Database):
    """The real database object; after `go_down()` every new connection fails (and ping raises),
    as when the server has gone away. Counts pings and connection attempts."""

    def __init__(self, engine, bus) -> None:
        super().__init__(engine, bus)
        self.down = False
        self.pings = 0
        self.connects = 0
        event.listen(engine, "do_connect", self._on_connect)

    def _on_connect(self, dialect, connection_record, cargs, cparams):
        self.connects += 1
        if self.down:
            raise ConnectionRefusedError("database is down")

    def go_down(self) -> None:
        self.down = True
        self.engine.dispose()  # drop pooled connections: the next use has to connect

    def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise ConnectionRefusedError("database is down")
        super().ping()


pytestmark = [
    # No health caching unless a test says otherwise, so every request runs the checks again.
    pytest.mark.credit_settings(health_cache_seconds=0.0),
    pytest.mark.credit_override(database=SwitchableDatabase),
]


@pytest.fixture
def down_cache(container):
    fake = FakeCache(down=True)
    container.cache.override(providers.Object(fake))
    return fake


@pytest.fixture
def down_database(container, app):
    """The app's database, gone down after the app started."""
    database = container.database()
    assert isinstance(database, SwitchableDatabase)
    database.go_down()
    return database


# -- liveness, readiness, aggregate health ----------------------------------------------------
def test_all_healthy(client):
    health = client.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "healthy"
    assert set(body["modules"]) == set(SHIPPED)
    assert all(m["status"] == "healthy" for m in body["modules"].values())
    ready = client.get("/readyz")
    assert (ready.status_code, ready.get_json()["status"]) == (200, "ready")


def test_livez_touches_no_backend(down_cache, down_database, client):
    down_database.pings = down_database.connects = down_cache.pings = 0
    live = client.get("/livez")
    assert live.status_code == 200
    assert live.get_json() == {"status": "alive"}
    assert (down_database.pings, down_database.connects, down_cache.pings) == (0, 0, 0)
    # The counters do count: the aggregate endpoint reaches the database, and fails.
    assert client.get("/health").status_code == 503
    assert down_database.pings + down_database.connects > 0


def test_cache_down_is_degraded_not_unhealthy(down_cache, app, client):
    assert app.module_manager.get_module("connection_api").cache is down_cache
    health = client.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "degraded"
    assert body["modules"]["connection_api"]["status"] == "degraded"
    assert client.get("/readyz").status_code == 200
    module = client.get("/modules/connection_api/health")
    assert (module.status_code, module.get_json()["status"]) == (200, "degraded")
    assert down_cache.pings > 0
    as_admin(app)
    details = client.get("/modules/connection_api/health").get_json()["details"]
    assert details["error"] == "cache unreachable: CacheUnavailable"
    assert details["cache"] == "fake"


def test_database_down_is_unhealthy(down_database, app, client):
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["status"] == "unhealthy"
    ready = client.get("/readyz")
    assert (ready.status_code, ready.get_json()["status"]) == (503, "not_ready")
    module = client.get("/modules/connection_api/health")
    assert (module.status_code, module.get_json()["status"]) == (503, "unhealthy")
    # A module whose dependency is unhealthy is unhealthy too, and says which.
    wallet = client.get("/modules/wallet_module/health")
    assert wallet.status_code == 503
    assert wallet.get_json()["dependencies"]["connection_api"] == "unhealthy"
    assert client.get("/livez").status_code == 200


def test_health_recovers_when_the_backend_returns(down_cache, app, client):
    assert client.get("/health").get_json()["status"] == "degraded"
    down_cache.down = False
    assert client.get("/health").get_json()["status"] == "healthy"


# -- one module's health ----------------------------------------------------------------------
def test_module_health_has_the_contract_fields(client):
    response = client.get("/modules/wallet_module/health")
    assert response.status_code == 200
    body = response.get_json()
    assert REQUIRED_KEYS <= set(body)
    assert body["module"] == "wallet_module"
    assert body["status"] == "healthy"
    assert body["dependencies"] == {"connection_api": "healthy", "user_management": "healthy"}
    checked = datetime.fromisoformat(body["last_check"])
    assert checked.utcoffset() is not None and checked.utcoffset().total_seconds() == 0
    assert isinstance(body["uptime"], (int, float)) and body["uptime"] >= 0
    assert "details" not in body


def test_unknown_module_health_is_404(client):
    response = client.get("/modules/no_such_module/health")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.credit_settings(modules_extra=f"{FX}.lifecycle:CountingHealth")
def test_details_only_for_admins(app, client):
    anonymous = client.get("/modules/counting/health")
    assert anonymous.status_code == 200
    assert "details" not in anonymous.get_json()
    assert "only-for-admins" not in anonymous.get_data(as_text=True)
    assert "only-for-admins" not in client.get("/health").get_data(as_text=True)

    as_user(app)
    assert "details" not in client.get("/modules/counting/health").get_json()
    assert "only-for-admins" not in client.get("/health").get_data(as_text=True)

    as_admin(app)
    admin = client.get("/modules/counting/health").get_json()
    assert admin["details"]["secret_detail"] == "only-for-admins"
    assert client.get("/health").get_json()["modules"]["counting"]["details"]["secret_detail"] == "only-for-admins"


@pytest.mark.credit_override(wallet_module=FailingWallet)
def test_failed_and_skipped_modules_are_unhealthy(app, client):
    wallet = client.get("/modules/wallet_module/health")
    assert (wallet.status_code, wallet.get_json()["status"]) == (503, "unhealthy")
    assert "exploded" not in wallet.get_data(as_text=True)
    assert client.get("/modules/transactions_module/health").status_code == 503
    assert client.get("/modules/user_management/health").status_code == 200
    as_admin(app)
    details = client.get("/modules/wallet_module/health").get_json()["details"]
    assert details["reason"] == "RuntimeError: wallet backend exploded"
    skipped = client.get("/modules/transactions_module/health").get_json()
    assert skipped["details"]["reason"] == "dependency wallet_module failed"
    assert skipped["dependencies"]["wallet_module"] == "failed"


@pytest.mark.credit_settings(modules_disabled="integration_module")
def test_disabled_module_is_left_out_of_aggregate_health(client):
    body = client.get("/health").get_json()
    assert body["status"] == "healthy"
    assert set(body["modules"]) == set(SHIPPED) - {"integration_module"}
    assert client.get("/modules/integration_module/health").get_json()["status"] == "disabled"


@pytest.mark.credit_settings(modules_extra=f"{FX}.lifecycle:BrokenHealth,{FX}.lifecycle:BogusHealth")
def test_a_raising_or_bogus_check_is_unhealthy(app, client):
    as_admin(app)
    broken = client.get("/modules/broken_health/health")
    assert broken.status_code == 503
    assert broken.get_json()["details"]["error"] == "ConnectionError: probe failed"
    bogus = client.get("/modules/bogus_health/health")
    assert (bogus.status_code, bogus.get_json()["status"]) == (503, "unhealthy")
    # Both are non-critical: the service is degraded, still ready.
    health = client.get("/health")
    assert (health.status_code, health.get_json()["status"]) == (200, "degraded")
    assert client.get("/readyz").status_code == 200


# -- bounded and cached -----------------------------------------------------------------------
@pytest.mark.credit_settings(modules_extra=f"{FX}.lifecycle:HangingHealth", health_timeout=0.2)
def test_hanging_check_is_reported_unhealthy_instead_of_hanging(app, client):
    as_admin(app)
    started = time.perf_counter()
    response = client.get("/modules/hanging/health")
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert "timed out" in body["details"]["error"]
    # The check blocks for HANG_SECONDS (10 s); the request came back long before that.
    assert elapsed < HANG_SECONDS / 2
    assert fixtures_modules.EVENTS == ["hanging.health_check"]


@pytest.mark.credit_settings(
    modules_extra=f"{FX}.lifecycle:HangingHealth,{FX}.lifecycle:CountingHealth", health_timeout=0.2
)
def test_a_hanging_check_does_not_starve_other_checks(app, client):
    """Repeated requests wait for the check already running instead of piling up new ones,
    so a hung check cannot occupy every health worker and time out everyone else's."""
    for _ in range(len(app.module_manager.load_order) + 1):  # more than there are workers
        assert client.get("/modules/hanging/health").status_code == 503
    assert fixtures_modules.EVENTS == ["hanging.health_check"]
    other = client.get("/modules/counting/health")
    assert (other.status_code, other.get_json()["status"]) == (200, "healthy")


_EXIT_SCRIPT = """
import sys
from app import create_app
from app.config import load_settings

settings = load_settings(environ={}, database_url=sys.argv[1], instance_path=sys.argv[2], secret_key="x" * 32,
                         health_timeout=0.2, modules_extra="tests.fixtures_modules.lifecycle:ForeverHanging")
app = create_app(settings)
response = app.test_client().get("/modules/forever/health")
print(response.status_code, response.get_json()["status"])
app.module_manager.shutdown()
"""


def test_a_hung_check_does_not_keep_the_process_alive(sqlite_template, tmp_path):
    """The process (a gunicorn worker, the CLI) can still exit while a check never returns."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, sqlite_template.fresh(tmp_path), str(tmp_path)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["503", "unhealthy"]


@pytest.mark.credit_settings(modules_extra=f"{FX}.lifecycle:CountingHealth", health_cache_seconds=60.0)
def test_health_results_are_cached_briefly(app):
    manager = app.module_manager
    first = manager.get_module_health("counting")
    second = manager.get_module_health("counting")
    assert fixtures_modules.EVENTS == ["counting.health_check"]
    assert first["last_check"] == second["last_check"]


@pytest.mark.credit_settings(modules_extra=f"{FX}.lifecycle:CountingHealth")
def test_without_caching_every_request_checks_again(app):
    manager = app.module_manager
    manager.get_module_health("counting")
    manager.get_module_health("counting")
    assert fixtures_modules.EVENTS == ["counting.health_check", "counting.health_check"]
