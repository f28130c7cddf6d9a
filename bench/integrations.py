"""`python -m bench.integrations`: outgoing webhooks, measured against a loopback receiver.

- Transfers with and without a webhook endpoint registered: transfers per second through
  the app in this process on several threads (a worker delivering meanwhile in the second
  run); the ratio says what registering an endpoint costs the request path (it should cost
  nothing there: the handler runs on workers, the sending in their own tasks).
- Deliveries per second: N events written straight into the outbox, then 1 and then 2
  `credit-system worker` processes relay them, write one delivery per endpoint and POST
  them, signed, to a local receiver; from the insert's commit to the last delivery
  succeeded. Each endpoint is sent to by one worker thread at a time (its lease), so the
  figures are given for several endpoints, which workers can serve in parallel.
- Commit-to-receipt latency: transfers at a steady rate while one worker delivers them; the
  receiver notes when each message arrives; p50/p99 of arrival minus the event's
  `occurred_at` (stamped as its transaction commits).

Workers run at nice 10, as in bench/events.py. Needs PostgreSQL and Redis
(CREDIT_BENCH_POSTGRES_URL / CREDIT_BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.events import insert_events, start_workers, stop_workers
from bench.events import worker_env as events_worker_env
from bench.seed import PASSWORD, REDIS, SECRET_KEY, scratch_database, seed_users

NICE = 10


class Receiver:
    """A loopback receiver answering 204 at once, noting when each message arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []
        lock = threading.Lock()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                self.send_response(204)
                self.end_headers()
                with lock:
                    arrivals.append((at, body))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def worker_env(db_url: str, workdir: Path) -> dict[str, str]:
    return events_worker_env(db_url, workdir, sweep_seconds=0.5, webhook_allow_private="true")


def app_for(db_url: str, workdir: Path):
    from app import create_app
    from app.config import load_settings

    settings = load_settings(
        environ={},
        database_url=db_url,
        cache_url=REDIS,
        queue_url=REDIS,
        instance_path=str(workdir),
        secret_key=SECRET_KEY,
        webhook_allow_private=True,
    )
    return create_app(settings)


def reset(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM webhook_deliveries"))
        conn.execute(text("DELETE FROM webhook_endpoints"))


def register(app, url: str, count: int) -> None:
    from app.services.principal import Principal

    admin = Principal("bench-admin", "admin")
    for _ in range(count):
        app.container.webhook_service().create_endpoint(admin, url, [], "bench")


def succeeded(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'")).scalar() or 0


def deliveries_per_second(db_url: str, workdir: Path, events: int, endpoints: int, workers: int) -> dict:
    engine = create_engine(db_url)
    receiver = Receiver()
    app = app_for(db_url, workdir)
    reset(engine)
    procs = start_workers(workers, worker_env(db_url, workdir), workdir)
    try:
        register(app, receiver.url, endpoints)
        time.sleep(4)  # the workers up and sweeping: what follows measures delivery, not start-up
        want = events * endpoints
        insert_events(engine, events)
        started = time.monotonic()
        while succeeded(engine) < want:
            if time.monotonic() - started > 900:
                raise RuntimeError(f"only {succeeded(engine)} of {want} deliveries in 900 s")
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a worker exited; see its log in the bench's work folder")
            time.sleep(0.05)
        seconds = time.monotonic() - started
    finally:
        stop_workers(procs)
        app.module_manager.shutdown()
        receiver.stop()
        engine.dispose()
    return {
        "events": events,
        "endpoints": endpoints,
        "workers": workers,
        "deliveries": want,
        "seconds": round(seconds, 2),
        "per_second": round(want / seconds),
    }


def transfers(app, users: list[str], names: dict[str, str], seconds: float, threads: int, rate: float) -> int:
    """Transfers on `threads` threads for `seconds` (paced to `rate` per second in all, 0: flat out)."""
    stop = threading.Event()
    done = [0] * threads

    def load(n: int) -> None:
        client = app.test_client()
        payer, payee = users[2 * n], users[2 * n + 1]
        token = client.post("/auth/login", json={"username": names[payer], "password": PASSWORD}).get_json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        interval = threads / rate if rate else 0.0
        next_at = time.monotonic()
        while not stop.is_set():
            next_at += interval
            if interval:
                time.sleep(max(next_at - time.monotonic(), 0))
            response = client.post(
                "/transactions", json={"from_user_id": payer, "to_user_id": payee, "amount": 1}, headers=headers
            )
            assert response.status_code == 201, response.get_data(as_text=True)
            done[n] += 1

    pool = [threading.Thread(target=load, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    return sum(done)


def transfers_and_latency(db_url: str, workdir: Path, seconds: float, threads: int, rate: float) -> dict:
    from app.services.passwords import Passwords

    engine = create_engine(db_url)
    reset(engine)
    users = seed_users(engine, f"wh{int(time.time())}", threads * 2, 1_000_000_000, Passwords().hash(PASSWORD))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, username FROM users WHERE id = ANY(:ids)"), {"ids": users}).all()
    names = {row[0]: row[1] for row in rows}
    receiver = Receiver()
    app = app_for(db_url, workdir)
    procs = start_workers(1, worker_env(db_url, workdir), workdir)
    try:
        time.sleep(4)
        transfers(app, users, names, 1, threads, 0)  # warm-up: connections, caches, the first requests' costs
        without = transfers(app, users, names, seconds, threads, 0)
        register(app, receiver.url, 1)
        time.sleep(1)
        with_endpoint = transfers(app, users, names, seconds, threads, 0)
        # Latency at a steady rate the worker keeps up with (the flat-out runs above left a backlog).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                pending = conn.execute(
                    text("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
                ).scalar()
                unstamped = conn.execute(text("SELECT count(*) FROM outbox_events WHERE sequence IS NULL")).scalar()
            if not pending and not unstamped:
                break
            time.sleep(0.2)
        mark = len(receiver.arrivals)
        steady = transfers(app, users, names, seconds, threads, rate)
        time.sleep(5)
    finally:
        stop_workers(procs)
        app.module_manager.shutdown()
        receiver.stop()
        engine.dispose()
    lags = []
    for at, body in receiver.arrivals[mark:]:
        event = json.loads(body)
        if event.get("type") == "transaction.posted":
            lags.append(at - datetime.fromisoformat(event["occurred_at"]).timestamp())
    lags.sort()
    result = {
        "threads": threads,
        "seconds": seconds,
        "without_endpoint_per_second": round(without / seconds),
        "with_endpoint_per_second": round(with_endpoint / seconds),
        "ratio": round(with_endpoint / without, 3) if without else None,
        "steady_rate": rate,
        "steady_transfers": steady,
        "samples": len(lags),
    }
    if lags:
        result["p50_ms"] = round(statistics.median(lags) * 1000, 1)
        result["p99_ms"] = round(lags[max(int(len(lags) * 0.99) - 1, 0)] * 1000, 1)
    return result


def run(db_url: str, workdir: Path, events: int = 1000, endpoints: int = 4, seconds: float = 10) -> dict:
    return {
        "nice": NICE,
        # A steady rate one endpoint's sender keeps up with: past it, the latency is the backlog's.
        "transfers": transfers_and_latency(db_url, workdir, seconds, threads=4, rate=10),
        "throughput": [deliveries_per_second(db_url, workdir, events, endpoints, workers) for workers in (1, 2)],
    }


def report(r: dict) -> None:
    print(f"\n== outgoing webhooks (workers at nice {r['nice']}, 2 threads each; a loopback receiver) ==")
    t = r["transfers"]
    print(
        f"transfers in process on {t['threads']} threads, {t['seconds']} s each: {t['without_endpoint_per_second']}/s "
        f"without an endpoint, {t['with_endpoint_per_second']}/s with one registered (ratio {t['ratio']})"
    )
    for d in r["throughput"]:
        print(
            f"deliveries, {d['workers']} worker(s): {d['events']} events x {d['endpoints']} endpoints = "
            f"{d['deliveries']} in {d['seconds']} s = {d['per_second']} deliveries/s"
        )
    if t.get("samples"):
        print(
            f"commit-to-receipt latency at {t['steady_rate']} transfers/s ({t['samples']} messages): "
            f"p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10, help="length of each transfer run")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="credit-bench-webhooks-"))
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    with scratch_database("credit_bench_webhooks") as db_url:
        report(run(db_url, workdir, args.events, args.endpoints, args.seconds))
    print(f"worker logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
