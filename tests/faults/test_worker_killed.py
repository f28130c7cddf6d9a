"""A gunicorn worker SIGKILLed in the middle of transfers: clients retry what was cut off
with the same Idempotency-Key; nothing is half-written, no key takes effect twice, no money
appears or vanishes, and the master brings the worker count back."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from tests.faults.harness import busiest_worker, check_books, fund_parties, start_servers, wait_until
from tests.httpclient import ServersClient
from tests.servers import ensure_admin

pytestmark = [pytest.mark.faults, pytest.mark.integration]

CLIENTS = 8
WORKERS = 3
MAX_KILLS = 4


def test_worker_killed_mid_transfers_keeps_the_books(postgres, redis_server, figures, tmp_path):
    ensure_admin(postgres.url, tmp_path)
    [server] = start_servers(postgres.url, redis_server.url(), tmp_path, count=1, workers=WORKERS, threads=4)
    try:
        api = ServersClient([server.url], figures)
        admin = api.login("admin")
        committed: dict[str, dict] = {}
        parties = fund_parties(api, admin, count=8, funding=2_000, committed=committed)
        stop = threading.Event()
        lock = threading.Lock()
        outcomes: dict[str, int] = {}
        retried_keys: set[str] = set()
        replayed_keys: set[str] = set()  # retried, and the first attempt had already taken effect

        def client(index: int) -> None:
            rng = random.Random(index)
            n = 0
            while not stop.is_set():
                n += 1
                key = f"k{index}-{n}"
                if rng.random() < 0.8:
                    a, b = rng.sample(parties, 2)
                    path, body = (
                        "/transactions",
                        {"from_user_id": a.id, "to_user_id": b.id, "amount": rng.randint(1, 80), "description": key},
                    )
                else:
                    a = rng.choice(parties)
                    path, body = "/wallet/withdraw", {"user_id": a.id, "amount": rng.randint(1, 30), "description": key}
                status, payload = api.send("POST", path, body, {**a.headers, "Idempotency-Key": key})
                with lock:
                    outcomes[key] = status
                    if api.last_attempts() > 1:
                        retried_keys.add(key)
                        replayed_keys.update([key] if api.last_replayed() else [])
                    if status == 201:
                        committed[key] = payload

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        killed: list[int] = []
        try:
            time.sleep(1.5)
            # Kill until at least one client has had a request cut off (usually the first kill).
            while len(killed) < MAX_KILLS and figures.client_failures == 0:
                assert len(server.worker_pids()) == WORKERS
                victim = busiest_worker(server)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                figures.faults += 1
                respawned = wait_until(lambda: len(set(server.worker_pids()) - set(killed)) == WORKERS, timeout=30)
                assert respawned is not None, "gunicorn did not replace the killed worker"
                time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=90)
        assert not any(thread.is_alive() for thread in threads), "a client hung"
        assert figures.client_failures > 0, f"{len(killed)} kills and no request was ever cut off"
        assert set(killed).isdisjoint(server.worker_pids()) and len(server.worker_pids()) == WORKERS

        wrong = {key: status for key, status in outcomes.items() if status not in (201, 409)}
        assert not wrong, list(wrong.items())[:5]
        assert figures.statuses[500] == 0, figures.summary()
        figures.extra.update(
            operations=len(outcomes),
            keys_retried_after_cutoff=len(retried_keys),
            retries_answered_by_replay=len(replayed_keys),
            workers_killed=len(killed),
        )
        assert sum(1 for status in outcomes.values() if status == 201) > 50
        check_books(postgres, api, admin, parties, figures, committed)
    finally:
        server.stop()
