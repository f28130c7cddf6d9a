"""What the fault scenarios share: our own throwaway PostgreSQL cluster and Redis server,
which a test may stop, kill and restart; gunicorn servers on them; the figures a scenario
prints; a background load; and the book checks that must hold after the storm.

The fixtures that hand these to tests are in conftest.py: the cluster is started once per
session (a migrated template database is cloned for every test) and every test gets a
fresh Redis server. Neither touches the shared services.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.infrastructure.database import Database, EventBus, build_engine
from app.infrastructure.migrations import upgrade
from app.services.ledger_verify import LedgerVerifier, VerifyReport
from tests.helpers import DEFAULT_PASSWORD
from tests.httpclient import ServersClient, body_of
from tests.servers import ServerProcess, free_port, server_env

PG_BIN = Path(os.environ.get("CREDIT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server")
TEMPLATE = "credit_template"


# -- the backends we own ------------------------------------------------------------------
def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres OS user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def missing_postgres_tools() -> list[str]:
    """The server binaries (in CREDIT_TEST_PG_BIN) this machine lacks to run a cluster of our own."""
    missing = [tool for tool in ("initdb", "pg_ctl") if not (PG_BIN / tool).exists()]
    if os.geteuid() == 0 and not shutil.which("runuser"):
        missing.append("runuser")
    return missing


class PostgresCluster:
    """initdb + pg_ctl on a free port, data and socket in a temp folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(
            _as_postgres([str(PG_BIN / args[0]), *args[1:]]), capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            log_tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} {args[-1]} failed ({done.returncode}): {done.stdout}{done.stderr}\nserver log: {log_tail}"
            )
        return done

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self, timeout: int = 30) -> None:
        # fsync=off: the tests crash PostgreSQL's processes, never the machine, so the page cache
        # keeps every committed write and crash recovery stays exact.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(timeout),
            "start",
            timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast") -> None:
        """fast: disconnect clients and shut down cleanly; immediate: like a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (
            subprocess.run(
                _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]), capture_output=True
            ).returncode
            == 0
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def create_template(self) -> None:
        """The migrated database every test's database is cloned from."""
        self.execute(f'CREATE DATABASE "{TEMPLATE}"')
        upgrade(self.url(TEMPLATE))

    def clone_template(self) -> FaultDatabase:
        """A fresh migrated database; the cluster is started first if a failed test left it stopped."""
        if not self.running():
            self.start()
        database = FaultDatabase(self, f"faults_{uuid.uuid4().hex[:10]}")
        self.execute(f'CREATE DATABASE "{database.name}" TEMPLATE "{TEMPLATE}"')
        return database

    def destroy(self) -> None:
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """redis-server without persistence on a fixed port: kill() it, start() it again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> None:
        assert REDIS_SERVER, "redis-server is not on PATH"
        proc = self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.root / f"redis-{self.port}.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.5) as client:
                    client.ping()
                return
            except redis.RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not come up") from None
                time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: Redis stalls (a long fork, a network blip): sockets stay open, nothing answers."""
        assert self.proc is not None, "not started"
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None, "not started"
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class FaultDatabase:
    """One test's database on the session's cluster; the cluster can be stopped and started."""

    cluster: PostgresCluster
    name: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)

    def stop(self, mode: str = "fast") -> None:
        self.cluster.stop(mode)

    def start(self) -> None:
        self.cluster.start()

    def engine(self):
        return create_engine(self.url, poolclass=NullPool)

    def drop(self) -> None:
        if not self.cluster.running():
            self.cluster.start()
        self.cluster.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# -- figures ------------------------------------------------------------------------------
@dataclass
class Figures:
    """What a scenario observed, printed as one line at its end; counts what its ServersClient saw."""

    name: str
    requests: int = 0
    faults: int = 0
    client_failures: int = 0  # connection errors and timeouts seen by clients
    retries: int = 0
    statuses: Counter = field(default_factory=Counter)
    max_latency: float = 0.0
    money_expected: int | None = None
    money_actual: int | None = None
    extra: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def answered(self, status: int, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] += 1
            self.max_latency = max(self.max_latency, seconds)

    def failed(self, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.client_failures += 1
            self.max_latency = max(self.max_latency, seconds)

    def retried(self) -> None:
        with self.lock:
            self.retries += 1

    @property
    def five_xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def money_lost(self) -> int | None:
        if self.money_expected is None or self.money_actual is None:
            return None
        return self.money_expected - self.money_actual

    def summary(self) -> str:
        statuses = ",".join(f"{status}:{count}" for status, count in sorted(self.statuses.items()))
        extra = "".join(f" {key}={value}" for key, value in self.extra.items())
        return (
            f"FAULT-FIGURES {self.name}: requests={self.requests} faults_injected={self.faults} "
            f"client_failures={self.client_failures} 5xx={self.five_xx} retries={self.retries} "
            f"money_lost={self.money_lost} (expected={self.money_expected} actual={self.money_actual}) "
            f"max_latency={self.max_latency:.2f}s statuses={{{statuses}}}{extra}"
        )


# -- talking to the servers -----------------------------------------------------------------
@dataclass
class Party:
    id: str
    username: str
    headers: dict


def start_servers(
    database_url: str, cache_url: str, instance: Path, count: int, workers: int, threads: int
) -> list[ServerProcess]:
    """`count` gunicorn servers on the same database and cache, started side by side."""
    env = server_env(database_url, cache_url, instance)
    servers = [
        ServerProcess(env, workers=workers, threads=threads, log_path=instance / f"server{i}.log") for i in range(count)
    ]
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda server: server.start(timeout=60), servers))
    return servers


def fund_parties(api: ServersClient, admin: dict, count: int, funding: int, committed: dict[str, dict]) -> list[Party]:
    """Register, log in and fund `count` users (each deposit has a key, its description, and
    lands in `committed` under that key)."""
    suffix = uuid.uuid4().hex[:6]

    def one(i: int) -> Party:
        name = f"f{suffix}{i}"
        status, user = api.send(
            "POST",
            "/users",
            {"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD},
            {},
            server=i,
        )
        assert status == 201, user
        key = f"fund-{user['id']}"
        status, body = api.send(
            "POST",
            "/wallet/deposit",
            {"user_id": user["id"], "amount": funding, "description": key},
            {**admin, "Idempotency-Key": key},
            server=i,
        )
        assert status == 201, body
        committed[key] = body
        return Party(user["id"], name, api.login(name))

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def verify_ledger(database_url: str) -> VerifyReport:
    database = Database(build_engine(database_url), EventBus())
    try:
        return LedgerVerifier(database).verify()
    finally:
        database.dispose()


def net_issued(transaction: dict) -> int:
    """How much a committed transaction added to the money held by users (deposits +,
    withdrawals -, a reversal mirrors its original)."""
    into_users, out_of_users = transaction["to_user_id"] is not None, transaction["from_user_id"] is not None
    return transaction["amount"] * (int(into_users) - int(out_of_users))


def check_books(
    database: FaultDatabase,
    api: ServersClient,
    admin: dict,
    parties: list[Party],
    figures: Figures,
    committed: dict[str, dict],
) -> VerifyReport:
    """The ledger after the storm. `committed` maps every Idempotency-Key that clients saw
    succeed (201) to the transaction they were given. Asserts: the verifier is clean; every
    transaction is the effect of exactly one key (its description is that key) and every key
    took effect at most once; clients and the database agree on which keys succeeded; money
    is conserved (expected total from the clients' view == balances == ledger)."""
    report = verify_ledger(database.url)
    assert report.ok, report

    engine = database.engine()
    try:
        with engine.connect() as conn:
            transactions = conn.execute(text("SELECT id, description FROM transactions")).all()
            stored = conn.execute(text("SELECT key, status_code, response_body FROM idempotency_keys")).all()
    finally:
        engine.dispose()
    by_description = Counter(description for _, description in transactions)
    duplicated = {description: count for description, count in by_description.items() if count > 1}
    assert not duplicated, f"keys that took effect more than once: {duplicated}"
    stored_effects = {key: json.loads(body)["id"] for key, status, body in stored if status == 201}
    assert len(set(stored_effects.values())) == len(stored_effects), "two keys point at one transaction"
    assert {tx_id: description for tx_id, description in transactions} == {
        tx_id: key for key, tx_id in stored_effects.items()
    }, "a transaction without its key, or a key without it"
    assert {key: tx["id"] for key, tx in committed.items()} == stored_effects, (
        "clients and the database disagree about which keys took effect"
    )

    balances = {}
    for party in parties:
        status, body = api.send("GET", f"/wallet/balance/{party.id}", None, admin)
        assert status == 200, body
        assert body["balance"] >= 0
        balances[party.id] = body["balance"]
    figures.money_expected = sum(net_issued(tx) for tx in committed.values())
    figures.money_actual = sum(balances.values())
    figures.extra["transactions"] = len(transactions)
    assert figures.money_lost == 0, figures.summary()
    assert report.total_balance == figures.money_actual == report.issued - report.redeemed
    return report


def probe(api: ServersClient, path: str, server: int = 0, timeout: float = 10) -> tuple[int | None, dict, float]:
    """(status or None on a connection error, body, seconds) of one GET."""
    started = time.monotonic()
    try:
        response = api.request("GET", path, server, timeout=timeout)
    except requests.RequestException as exc:
        return None, {"exception": type(exc).__name__}, time.monotonic() - started
    return response.status_code, body_of(response), time.monotonic() - started


def wait_until(predicate, timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until predicate() was true, or None if it never was within timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def all_workers_report(api: ServersClient, path: str, want: tuple[int, str], samples: int = 6) -> bool:
    """Every server answers `want` (status, body status) `samples` times in a row, so each of
    its workers has most likely been asked."""
    for server in range(len(api.urls)):
        for _ in range(samples):
            status, body, _ = probe(api, path, server)
            if (status, body.get("status")) != want:
                return False
    return True


@dataclass
class Attempt:
    """One request the background load sent, and what came back (status None: no answer)."""

    method: str
    path: str
    body: dict | None
    headers: dict
    server: int
    started: float
    seconds: float
    status: int | None
    payload: dict

    @property
    def key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


class BackgroundLoad:
    """Client threads looping transfer (with a fresh Idempotency-Key, also its description)
    then balance read, each thread on its own server; one attempt per request, no retries."""

    def __init__(
        self,
        api: ServersClient,
        parties: list[Party],
        threads: int = 4,
        amounts: tuple[int, int] = (1, 20),
        pause: float = 0.0,
    ) -> None:
        self.api, self.parties, self.amounts, self.pause = api, parties, amounts, pause
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _send(self, method: str, path: str, body: dict | None, headers: dict, server: int) -> Attempt:
        started = time.monotonic()
        try:
            response = self.api.request(method, path, server, json=body, headers=headers)
            status, payload = response.status_code, body_of(response)
        except requests.RequestException as exc:
            status, payload = None, {"exception": type(exc).__name__}
        attempt = Attempt(method, path, body, headers, server, started, time.monotonic() - started, status, payload)
        with self._lock:
            self.attempts.append(attempt)
        return attempt

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        server = index
        while not self._stop.is_set():
            a, b = rng.sample(self.parties, 2)
            key = f"load-{uuid.uuid4().hex}"
            self._send(
                "POST",
                "/transactions",
                {"from_user_id": a.id, "to_user_id": b.id, "amount": rng.randint(*self.amounts), "description": key},
                {**a.headers, "Idempotency-Key": key},
                server,
            )
            self._send("GET", f"/wallet/balance/{a.id}", None, a.headers, server)
            if self.pause:
                time.sleep(self.pause)

    def start(self) -> BackgroundLoad:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self._threads), "a client thread hung"

    def between(self, start: float, end: float) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if start <= a.started < end]

    def resolve(self, committed: dict[str, dict]) -> int:
        """Settle every write: 201s go to `committed`; an unanswered or 503 write is sent again
        with its key until it has a definite answer. Returns how many were re-sent."""
        resent = 0
        for attempt in list(self.attempts):
            if attempt.key is None:
                continue
            status, payload = attempt.status, attempt.payload
            if status is None or status == 503:
                resent += 1
                status, payload = self.api.send(
                    attempt.method, attempt.path, attempt.body, attempt.headers, attempt.server + 1
                )
            assert status in (201, 409), (attempt.path, status, payload)
            if status == 201:
                committed[attempt.key] = payload
        return resent


def busiest_worker(server: ServerProcess) -> int:
    """The worker pid holding the most client connections to the server (gunicorn's gthread
    workers keep a client's connection, so a worker with none would be an idle victim)."""
    workers = server.worker_pids()
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{server.port} )"], capture_output=True, text=True
    ).stdout
    held = Counter(int(pid) for pid in re.findall(r"pid=(\d+)", out) if int(pid) in workers)
    return held.most_common(1)[0][0] if held else random.choice(workers)
