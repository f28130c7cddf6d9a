"""A random money workload many clients run at once, and the checks that must hold after it.

Clients talk to the API through a small `Http` interface, so the same workload drives the
Flask test client (threads in one process) or real servers over HTTP (several processes,
through tests.httpclient.ServersClient).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol


class Http(Protocol):
    """What the workload needs of a client: FlaskHttp here, tests.httpclient.ServersClient
    for real servers."""

    def post(self, path: str, json: dict, headers: dict) -> tuple[int, dict, dict]: ...

    def get(self, path: str, headers: dict) -> tuple[int, dict]: ...


class FlaskHttp:
    """One Flask test client per thread (the client itself is not shared across threads)."""

    def __init__(self, app) -> None:
        self._app = app
        self._local = threading.local()

    def _client(self):
        if not hasattr(self._local, "client"):
            self._local.client = self._app.test_client()
        return self._local.client

    def post(self, path, json, headers):
        response = self._client().post(path, json=json, headers=headers)
        return response.status_code, response.get_json(), dict(response.headers)

    def get(self, path, headers):
        response = self._client().get(path, headers=headers)
        return response.status_code, response.get_json()


@dataclass
class Party:
    id: str
    headers: dict


@dataclass
class WorkloadResult:
    statuses: Counter = field(default_factory=Counter)
    replays: int = 0
    replay_mismatches: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    committed: list = field(default_factory=list)


def setup_parties(http: Http, admin: Party, count: int, funding: int, password: str) -> list[Party]:
    """Register `count` users, log each in, and fund each wallet by admin deposit."""
    parties = []
    suffix = uuid.uuid4().hex[:6]
    for i in range(count):
        name = f"w{suffix}{i}"
        status, user, _ = http.post(
            "/users", {"username": name, "email": f"{name}@example.com", "password": password}, {}
        )
        assert status == 201, user
        status, token, _ = http.post("/auth/login", {"username": name, "password": password}, {})
        assert status == 200, token
        party = Party(user["id"], {"Authorization": f"Bearer {token['access_token']}"})
        status, body, _ = http.post("/wallet/deposit", {"user_id": party.id, "amount": funding}, admin.headers)
        assert status == 201, body
        parties.append(party)
    return parties


def run_workload(
    http: Http,
    admin: Party,
    parties: list[Party],
    operations: int,
    threads: int,
    seed: int = 1,
    retry_rate: float = 0.1,
) -> WorkloadResult:
    """Random transfers (both directions), withdrawals and admin reversals, each with an
    idempotency key; some are sent twice to check the replay is exact."""
    result = WorkloadResult()
    lock = threading.Lock()
    reversible: list[str] = []

    def one(i: int) -> None:
        rng = random.Random(seed * 1_000_003 + i)
        roll = rng.random()
        key = f"op-{seed}-{i}"
        if roll < 0.65:
            a, b = rng.sample(parties, 2)
            path, body, headers = (
                "/transactions",
                {"from_user_id": a.id, "to_user_id": b.id, "amount": rng.randint(1, 60)},
                a.headers,
            )
        elif roll < 0.85 or not reversible:
            a = rng.choice(parties)
            path, body, headers = "/wallet/withdraw", {"user_id": a.id, "amount": rng.randint(1, 40)}, a.headers
        else:
            with lock:
                target = rng.choice(reversible)
            path, body, headers = f"/transactions/{target}/reverse", {"reason": "workload"}, admin.headers
        headers = {**headers, "Idempotency-Key": key}
        status, response, _ = http.post(path, body, headers)
        acceptable = {201, 409}
        with lock:
            result.statuses[status] += 1
            if status not in acceptable:
                result.unexpected.append((path, status, response))
            if status == 201:
                result.committed.append(response["id"])
                if response["type"] != "reversal":
                    reversible.append(response["id"])
        if rng.random() < retry_rate:
            again, replay, replay_headers = http.post(path, body, headers)
            with lock:
                result.replays += 1
                if again != status or replay != response or replay_headers.get("Idempotent-Replayed") != "true":
                    result.replay_mismatches.append((path, status, again))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(operations)))
    return result


def history_net(http: Http, party: Party, admin: Party) -> int:
    """A user's balance recomputed from every page of their history."""
    net, cursor = 0, None
    while True:
        path = f"/transactions?user_id={party.id}&limit=200" + (f"&cursor={cursor}" if cursor else "")
        status, page = http.get(path, admin.headers)
        assert status == 200, page
        for tx in page["items"]:
            if tx["to_user_id"] == party.id:
                net += tx["amount"]
            if tx["from_user_id"] == party.id:
                net -= tx["amount"]
        cursor = page["next_cursor"]
        if not cursor:
            return net


def assert_books_balance(http: Http, admin: Party, parties: list[Party], verifier) -> dict:
    """Money conserved, nothing negative, every history sums to its balance, verify is clean."""
    report = verifier.verify()
    assert report.ok, report
    balances = {}
    for party in parties:
        status, body = http.get(f"/wallet/balance/{party.id}", admin.headers)
        assert status == 200, body
        balances[party.id] = body["balance"]
        assert body["balance"] >= 0
        assert history_net(http, party, admin) == body["balance"], party.id
    assert sum(balances.values()) == report.total_balance == report.issued - report.redeemed
    return balances
