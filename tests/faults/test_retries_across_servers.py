"""Two servers, many clients, mixed transfers, withdrawals and reversals while faults hit:
a worker killed, PostgreSQL crashed and restarted, a whole server killed and restarted.
A request that fails (no answer, a timeout, or 503) is retried on the OTHER server with the
same Idempotency-Key; impatient clients time out at once, so their retry races the original.
Afterwards: money conserved exactly, every key took effect at most once, and the ledger
verifies clean."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter

import pytest

from tests.faults.harness import busiest_worker, check_books, fund_parties, start_servers, wait_until
from tests.httpclient import ServersClient
from tests.servers import ensure_admin

pytestmark = [pytest.mark.faults, pytest.mark.integration]

CLIENTS = 12
PARTIES = 10
IMPATIENT = 0.2  # share of operations whose first attempt times out almost at once


def test_retries_across_servers_take_effect_once(postgres, redis_server, figures, tmp_path):
    ensure_admin(postgres.url, tmp_path)
    servers = start_servers(postgres.url, redis_server.url(), tmp_path, count=2, workers=2, threads=3)
    try:
        api = ServersClient([server.url for server in servers], figures)
        admin = api.login("admin")
        committed: dict[str, dict] = {}
        parties = fund_parties(api, admin, count=PARTIES, funding=1_000, committed=committed)
        stop = threading.Event()
        lock = threading.Lock()
        reversible: list[str] = []
        outcomes: Counter = Counter()
        wrong: list = []
        retried, replayed = [0], [0]

        def client(index: int) -> None:
            rng = random.Random(1000 + index)
            n = 0
            while not stop.is_set():
                n += 1
                key = f"x{index}-{n}"
                roll = rng.random()
                with lock:
                    target = rng.choice(reversible) if reversible and roll >= 0.8 else None
                body: dict[str, object]
                if target:
                    path, body, headers = f"/transactions/{target}/reverse", {"reason": key}, admin
                elif roll < 0.6 or roll >= 0.8:
                    a, b = rng.sample(parties, 2)
                    path, body, headers = (
                        "/transactions",
                        {"from_user_id": a.id, "to_user_id": b.id, "amount": rng.randint(1, 60), "description": key},
                        a.headers,
                    )
                else:
                    a = rng.choice(parties)
                    path, body, headers = (
                        "/wallet/withdraw",
                        {"user_id": a.id, "amount": rng.randint(1, 25), "description": key},
                        a.headers,
                    )
                # Some clients are impatient: their retry races the first attempt, still running.
                impatient = rng.uniform(0.01, 0.08) if rng.random() < IMPATIENT else None
                status, payload = api.send(
                    "POST",
                    path,
                    body,
                    {**headers, "Idempotency-Key": key},
                    server=rng.randrange(len(servers)),
                    first_timeout=impatient,
                )
                with lock:
                    if api.last_attempts() > 1:
                        retried[0] += 1
                        replayed[0] += api.last_replayed()
                    code = payload.get("error", {}).get("code") if status != 201 else payload["type"]
                    outcomes[f"{status}:{code}"] += 1
                    if status == 201:
                        committed[key] = payload
                        if payload["type"] != "reversal":
                            reversible.append(payload["id"])
                    elif (status, code) not in ((409, "insufficient_funds"), (409, "already_reversed")):
                        wrong.append((path, status, payload))

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.5)
            # 1. a worker of server 0, SIGKILLed; gunicorn replaces it
            victim = busiest_worker(servers[0])
            os.kill(victim, signal.SIGKILL)
            figures.faults += 1
            assert (
                wait_until(
                    lambda: victim not in servers[0].worker_pids() and len(servers[0].worker_pids()) == 2, timeout=30
                )
                is not None
            )
            time.sleep(1.0)
            # 2. PostgreSQL crashes (immediate: no shutdown checkpoint) and comes back
            postgres.stop("immediate")
            figures.faults += 1
            time.sleep(1.5)
            postgres.start()
            time.sleep(1.0)
            # 3. all of server 1 SIGKILLed, then started again on the same port
            os.killpg(servers[1].proc.pid, signal.SIGKILL)
            servers[1].proc.wait()
            figures.faults += 1
            time.sleep(1.0)
            servers[1].start(timeout=60)
            time.sleep(1.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=90)
        assert not any(thread.is_alive() for thread in threads), "a client hung"

        figures.extra.update(
            operations=sum(outcomes.values()),
            retried_operations=retried[0],
            retries_answered_by_replay=replayed[0],
            outcomes=dict(outcomes),
        )
        assert not wrong, wrong[:5]
        assert figures.statuses[500] == 0, figures.summary()
        assert retried[0] > 0 and figures.client_failures > 0 and figures.statuses[503] > 0, (
            "the faults never made a client retry"
        )
        assert outcomes["201:transfer"] > 50 and outcomes["201:withdrawal"] > 5 and outcomes["201:reversal"] > 5, (
            outcomes
        )
        for server in range(len(servers)):  # both servers serve again
            assert api.request("GET", f"/wallet/balance/{parties[0].id}", server, headers=admin).status_code == 200
        check_books(postgres, api, admin, parties, figures, committed)
    finally:
        for server in servers:
            server.stop()
