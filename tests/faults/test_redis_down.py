"""Redis killed under load: the service keeps answering from PostgreSQL and says `degraded`;
Redis back: `healthy` again without a restart, and the cache is written again. Redis
stalled: what could not be written to it is not served stale once it answers again."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from app.infrastructure.cache import versioned
from tests.faults.harness import (
    BackgroundLoad,
    all_workers_report,
    check_books,
    fund_parties,
    probe,
    start_servers,
    wait_until,
)
from tests.helpers import DEFAULT_PASSWORD
from tests.httpclient import ServersClient
from tests.servers import ensure_admin

pytestmark = [pytest.mark.faults, pytest.mark.integration]

OUTAGE_SECONDS = 3.0
STALLED_WRITE_SECONDS = 2.4  # before the fix: 5 cache calls x 0.5 s timeout = 2.5 s at least


def test_redis_killed_under_load_degrades_and_recovers(postgres, redis_server, figures, tmp_path):
    ensure_admin(postgres.url, tmp_path)
    servers = start_servers(postgres.url, redis_server.url(), tmp_path, count=2, workers=2, threads=4)
    try:
        api = ServersClient([server.url for server in servers], figures)
        admin = api.login("admin")
        committed: dict[str, dict] = {}
        parties = fund_parties(api, admin, count=6, funding=10_000, committed=committed)
        assert all_workers_report(api, "/health", (200, "healthy"))

        load = BackgroundLoad(api, parties, threads=4).start()
        try:
            time.sleep(1.0)
            redis_server.kill()
            figures.faults += 1
            outage_start = time.monotonic()
            degraded_after = wait_until(lambda: all_workers_report(api, "/health", (200, "degraded")), timeout=10)
            assert degraded_after is not None, "/health never said degraded with Redis down"
            # Logging in while the throttle's storage is gone still works.
            response = api.request(
                "POST", "/auth/login", json={"username": parties[0].username, "password": DEFAULT_PASSWORD}
            )
            assert response.status_code == 200, response.text
            # Stay down a while, every server answering 200 degraded all along.
            while time.monotonic() - outage_start < OUTAGE_SECONDS:
                for server in range(len(servers)):
                    status, body, _ = probe(api, "/health", server)
                    assert (status, body.get("status")) == (200, "degraded"), (status, body)
                time.sleep(0.2)
            redis_server.start()
            figures.faults += 1  # the restart is the second event the service has to absorb
            outage_end = time.monotonic()
            healthy_after = wait_until(lambda: all_workers_report(api, "/health", (200, "healthy")), timeout=10)
            assert healthy_after is not None, "/health did not come back to healthy after Redis returned"
            assert healthy_after < 5, f"took {healthy_after:.1f}s to notice Redis was back"
            time.sleep(1.5)  # past the cache's back-off after its last failure, load still running
        finally:
            load.stop()

        during = load.between(outage_start, outage_end)
        figures.extra.update(
            outage_requests=len(during),
            degraded_after=f"{degraded_after:.2f}s",
            healthy_after=f"{healthy_after:.2f}s",
            outage_max_latency=f"{max((a.seconds for a in during), default=0):.2f}s",
        )
        assert len([a for a in during if a.method == "POST"]) >= 10, "the load hardly ran during the outage"
        failed = [(a.path, a.status, a.payload) for a in load.attempts if a.status not in (200, 201)]
        assert not failed, failed[:5]
        assert figures.client_failures == 0 and figures.five_xx == 0, figures.summary()
        slow = [(a.path, round(a.seconds, 2)) for a in during if a.seconds > 3]
        assert not slow, f"requests crawled with Redis down: {slow[:5]}"

        # After recovery a write lands in the cache again, and reads agree with the database.
        a, b = parties[0], parties[1]
        key = "after-recovery"
        status, transfer = api.send(
            "POST",
            "/transactions",
            {"from_user_id": a.id, "to_user_id": b.id, "amount": 7, "description": key},
            {**a.headers, "Idempotency-Key": key},
        )
        assert status == 201, transfer
        engine = postgres.engine()
        try:
            with engine.connect() as conn:
                stored = dict(conn.execute(text("SELECT user_id, balance FROM accounts WHERE kind = 'user'")).all())
        finally:
            engine.dispose()
        with redis_server.client() as cache:
            for party in (a, b):
                cached = versioned.decode(cache.get(f"balance:{party.id}"))
                assert cached is not None, "a write after recovery did not reach the cache"
                assert json.loads(cached[1])[0] == stored[party.id]
        for party in parties:
            for server in range(len(servers)):
                status, body = api.send("GET", f"/wallet/balance/{party.id}", None, party.headers, server)
                assert (status, body["balance"]) == (200, stored[party.id])

        load.resolve(committed)
        committed[key] = transfer
        check_books(postgres, api, admin, parties, figures, committed)
    finally:
        for server in servers:
            server.stop()


def test_redis_stall_leaves_no_stale_cache_behind(postgres, redis_server, figures, tmp_path):
    """Redis stalls (SIGSTOP) while money moves and a token is logged out: the writes that
    could not reach the cache must not leave the old balances, or the token's old "not
    revoked", to be served once Redis answers again."""
    ensure_admin(postgres.url, tmp_path)
    servers = start_servers(postgres.url, redis_server.url(), tmp_path, count=1, workers=2, threads=4)
    try:
        api = ServersClient([server.url for server in servers], figures)
        admin = api.login("admin")
        committed: dict[str, dict] = {}
        parties = fund_parties(api, admin, count=4, funding=1_000, committed=committed)
        leaving = api.login(parties[0].username)

        def read_everything() -> tuple[dict, set]:
            """Balances as the API shows them (every worker asked), and /users/me with `leaving`."""
            seen: dict[str, set] = {}
            for _ in range(4):
                for party in parties:
                    response = api.request("GET", f"/wallet/balance/{party.id}", headers=admin)
                    assert response.status_code == 200, response.text
                    seen.setdefault(party.id, set()).add(response.json()["balance"])
            me = {api.request("GET", "/users/me", headers=leaving).status_code for _ in range(4)}
            return seen, me

        read_everything()  # the cache now holds every balance and `leaving` as not revoked
        redis_server.pause()
        figures.faults += 1
        stalled = time.monotonic()
        stalled_latency: list[float] = []
        for i in range(6):
            a, b = parties[i % 4], parties[(i + 1) % 4]
            key = f"stall-{i}"
            started = time.monotonic()
            status, body = api.send(
                "POST",
                "/transactions",
                {"from_user_id": a.id, "to_user_id": b.id, "amount": 10 + i, "description": key},
                {**a.headers, "Idempotency-Key": key},
            )
            seconds = time.monotonic() - started
            assert status == 201, (status, body)
            # One cache timeout per request at most, not one per cache call (~5 of them).
            assert seconds < STALLED_WRITE_SECONDS, f"a transfer took {seconds:.2f}s with Redis stalled"
            stalled_latency.append(seconds)
            committed[key] = body
        status, body = api.send("POST", "/auth/logout", None, leaving)
        assert status == 204, body
        figures.extra.update(
            stall_seconds=f"{time.monotonic() - stalled:.2f}s",
            stalled_transfer_max_latency=f"{max(stalled_latency):.2f}s",
        )
        redis_server.resume()

        engine = postgres.engine()
        try:
            with engine.connect() as conn:
                stored = dict(conn.execute(text("SELECT user_id, balance FROM accounts WHERE kind = 'user'")).all())
        finally:
            engine.dispose()
        expected = {party.id: {stored[party.id]} for party in parties}
        last = {}

        def consistent() -> bool:
            last["seen"], last["me"] = read_everything()
            return last["seen"] == expected and last["me"] == {401}

        consistent_after = wait_until(consistent, timeout=5, interval=0.2)
        assert consistent_after is not None, (
            f"stale cache after the stall: balances {last['seen']} vs {expected}; logged-out token got {last['me']}"
        )
        figures.extra["consistent_after"] = f"{consistent_after:.2f}s"
        assert wait_until(lambda: all_workers_report(api, "/health", (200, "healthy")), timeout=10) is not None
        assert figures.statuses[500] == 0 and figures.client_failures == 0, figures.summary()
        check_books(postgres, api, admin, parties, figures, committed)
    finally:
        for server in servers:
            server.stop()
