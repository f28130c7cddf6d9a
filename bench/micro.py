"""In-process measurements: app start-up and what dependency injection costs a request."""

from __future__ import annotations

import statistics
import time
import timeit
from pathlib import Path

from dependency_injector import providers

from bench.seed import PASSWORD, settings_for


def startup_times(db_url: str, cache_url: str, workdir: Path, runs: int = 15) -> dict:
    """create_app from a fresh container, every module initialized, routes registered."""
    from app import create_app

    settings = settings_for(db_url, cache_url, workdir)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        app = create_app(settings)
        samples.append((time.perf_counter() - started) * 1000)
        assert all(s.status == "initialized" for s in app.module_manager.states.values())
        app.module_manager.shutdown()
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": runs}


def _boom():
    raise AssertionError("a provider was called while serving a request")


def di_cost(db_url: str, cache_url: str, workdir: Path, requests: int = 2000) -> dict:
    """Providers are resolved once at start-up; prove no request calls one, and price a call."""
    from app import create_app

    app = create_app(settings_for(db_url, cache_url, workdir))
    client = app.test_client()
    token = client.post("/auth/login", json={"username": "benchadmin", "password": PASSWORD}).get_json()["access_token"]
    user_id = client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).get_json()["id"]
    headers = {"Authorization": f"Bearer {token}"}

    def per_request_us() -> float:
        started = time.perf_counter()
        for _ in range(requests):
            assert client.get(f"/wallet/balance/{user_id}", headers=headers).status_code == 200
        return (time.perf_counter() - started) / requests * 1e6

    lookup_ns = min(timeit.repeat(app.container.transaction_service, number=100_000, repeat=3)) / 100_000 * 1e9
    with_container = per_request_us()
    # Every provider now raises when called: if a request still succeeds, it called none.
    overridable = [p for p in app.container.providers.values() if not isinstance(p, providers.Configuration)]
    for provider in overridable:
        provider.override(providers.Callable(_boom))
    try:
        direct = per_request_us()
    finally:
        for provider in overridable:
            provider.reset_last_overriding()
    app.module_manager.shutdown()
    return {
        "provider_calls_per_request": 0,
        "singleton_lookup_ns": lookup_ns,
        "request_us_container": with_container,
        "request_us_direct": direct,
    }
