"""PostgreSQL stopped under load: quick 503 service_unavailable (never a 500, never a hang),
not ready, unhealthy, still alive; started again: the same processes recover on their own
and the ledger holds nothing half-written."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.faults.harness import (
    BackgroundLoad,
    all_workers_report,
    check_books,
    fund_parties,
    probe,
    start_servers,
    wait_until,
)
from tests.httpclient import ServersClient, body_of
from tests.servers import ensure_admin

pytestmark = [pytest.mark.faults, pytest.mark.integration]

OUTAGE_SECONDS = 3.0
QUICK = 5.0  # every answer while the database is down comes within this many seconds


def test_postgres_stopped_answers_503_quickly_and_recovers(postgres, redis_server, figures, tmp_path):
    ensure_admin(postgres.url, tmp_path)
    [server] = start_servers(postgres.url, redis_server.url(), tmp_path, count=1, workers=2, threads=4)
    try:
        api = ServersClient([server.url], figures)
        admin = api.login("admin")
        committed: dict[str, dict] = {}
        parties = fund_parties(api, admin, count=6, funding=10_000, committed=committed)
        a, b = parties[0], parties[1]

        load = BackgroundLoad(api, parties, threads=4).start()
        try:
            time.sleep(1.0)
            postgres.stop("fast")
            figures.faults += 1
            outage_start = time.monotonic()
            unhealthy_after = wait_until(lambda: all_workers_report(api, "/health", (503, "unhealthy")), timeout=10)
            assert unhealthy_after is not None, "/health never said unhealthy with the database down"
            # Every kind of endpoint: a 503 service_unavailable (or a cached 200), quickly, never a 500.
            sweep = [
                (
                    "POST",
                    "/users",
                    {"username": "newcomer", "email": "newcomer@example.com", "password": "correct-horse-battery"},
                    {},
                ),
                ("POST", "/auth/login", {"username": a.username, "password": "correct-horse-battery"}, {}),
                ("GET", "/users/me", None, a.headers),
                ("GET", f"/users/{a.id}", None, admin),
                ("GET", "/users", None, admin),
                ("GET", f"/transactions?user_id={a.id}", None, admin),
                ("GET", "/transactions", None, a.headers),
                ("GET", f"/wallet/balance/{b.id}", None, admin),
                ("POST", "/wallet/deposit", {"user_id": a.id, "amount": 10}, admin),
                ("POST", "/wallet/withdraw", {"user_id": a.id, "amount": 10}, a.headers),
                ("POST", "/auth/logout", None, parties[-1].headers),
                ("GET", "/modules/status", None, {}),
                ("GET", "/modules/connection_api/health", None, {}),
            ]
            swept = Counter()
            for method, path, body, headers in sweep:
                started = time.monotonic()
                response = api.request(method, path, json=body, headers=headers)
                assert time.monotonic() - started < QUICK, (method, path)
                code = body_of(response).get("error", {}).get("code")
                swept[response.status_code] += 1
                assert response.status_code in (200, 503), (method, path, response.status_code, response.text)
                if response.status_code == 503 and path != "/modules/connection_api/health":
                    assert code == "service_unavailable", (method, path, response.text)
            assert swept[503] >= len(sweep) - 4, swept  # cached reads may still answer
            probes = 0
            while time.monotonic() - outage_start < OUTAGE_SECONDS:
                key = f"outage-{probes}"
                started = time.monotonic()
                response = api.request(
                    "POST",
                    "/transactions",
                    json={"from_user_id": a.id, "to_user_id": b.id, "amount": 3, "description": key},
                    headers={**a.headers, "Idempotency-Key": key},
                )
                assert response.status_code == 503, response.text
                assert body_of(response)["error"]["code"] == "service_unavailable", response.text
                assert time.monotonic() - started < QUICK
                for path, want in (
                    ("/readyz", (503, "not_ready")),
                    ("/health", (503, "unhealthy")),
                    ("/livez", (200, "alive")),
                ):
                    status, body, seconds = probe(api, path)
                    assert (status, body.get("status")) == want, (path, status, body)
                    assert seconds < QUICK, (path, seconds)
                probes += 1
            postgres.start()
            figures.faults += 1
            outage_end = time.monotonic()

            def transfers_again() -> bool:
                response = api.request(
                    "POST",
                    "/transactions",
                    json={"from_user_id": a.id, "to_user_id": b.id, "amount": 5, "description": "recovered"},
                    headers={**a.headers, "Idempotency-Key": "recovered"},
                )
                if response.status_code == 201:
                    committed["recovered"] = body_of(response)
                    return True
                assert response.status_code == 503, response.text
                return False

            recovered_after = wait_until(transfers_again, timeout=15, interval=0.2)
            assert recovered_after is not None, "no transfer went through after PostgreSQL came back"
            assert recovered_after < 5, f"took {recovered_after:.1f}s to recover"
            assert wait_until(lambda: all_workers_report(api, "/readyz", (200, "ready")), timeout=10) is not None
            assert all_workers_report(api, "/health", (200, "healthy"))
            time.sleep(0.5)
        finally:
            load.stop()

        during = load.between(outage_start, outage_end)
        writes_during = [a for a in during if a.method == "POST"]
        refused = [a for a in writes_during if a.status == 503]
        figures.extra.update(
            probes_during_outage=probes,
            endpoint_sweep=dict(swept),
            load_writes_during_outage=len(writes_during),
            load_writes_refused=len(refused),
            unhealthy_after=f"{unhealthy_after:.2f}s",
            recovered_after=f"{recovered_after:.2f}s",
            outage_max_latency=f"{max((a.seconds for a in during), default=0):.2f}s",
        )
        assert refused, "the load never saw the outage"
        wrong = [
            (a.path, a.status, a.payload)
            for a in load.attempts
            if a.status not in (200, 201, 409, 503)
            or (a.status == 503 and a.payload.get("error", {}).get("code") != "service_unavailable")
        ]
        assert not wrong, wrong[:5]
        slow = [(a.path, round(a.seconds, 2)) for a in load.attempts if a.seconds >= QUICK]
        assert not slow, slow[:5]
        assert figures.client_failures == 0 and figures.statuses[500] == 0, figures.summary()

        # Every write that was refused or cut off is sent again with its key: once each, at most.
        figures.extra["resent"] = load.resolve(committed)
        check_books(postgres, api, admin, parties, figures, committed)
    finally:
        server.stop()
