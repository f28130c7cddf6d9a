"""`python -m bench.events`: the event backbone's throughput and latency (also part of `make bench`).

- Throughput: N events are written straight into the outbox (as N commits would leave
  them), then 1 and then 2 `credit-system worker` processes relay and deliver them to a
  no-op subscriber; events per second from the insert's commit to the last delivery done.
- Latency under load: transfers through the app in this process on several threads while
  one worker delivers them to a subscriber that stores, in its handler's transaction, how
  long after the event's commit it ran; p50/p99 of that commit-to-handler time.

Workers run at a lower CPU priority (`nice`), as background work on this shared 2-core
machine (production runs them on other hosts or at lower priority); the figures say so.
The ratio runs of `make bench` start theirs under SCHED_IDLE (IDLE below) and hold it
(SIGSTOP, signal_workers) during the project's timed transfer runs, as a worker on a host
of its own; what it owes is drained, and timed, after each run.
Needs PostgreSQL and Redis (CREDIT_BENCH_POSTGRES_URL / CREDIT_BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.seed import PASSWORD, REDIS, SECRET_KEY, scratch_database

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NICE = 10
BACKGROUND = ("nice", "-n", str(NICE))  # the backbone's own figures: workers beside the load
IDLE = ("chrt", "--idle", "0")  # the ratio runs: only CPU time that no request wants
NOOP = "bench.subscribers:NoopSubscriber"
LATENCY = "bench.subscribers:LatencySubscriber"


def worker_env(
    db_url: str, workdir: Path, modules: str = "", sweep_seconds: float = 0.2, **settings: str
) -> dict[str, str]:
    """A `credit-system worker`'s environment on the bench database and Redis; `settings`
    are more CREDIT_* variables, by their lower-case names without the prefix."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CREDIT_DATABASE_URL": db_url,
        "CREDIT_CACHE_URL": REDIS,
        "CREDIT_QUEUE_URL": REDIS,
        "CREDIT_INSTANCE_PATH": str(workdir),
        "CREDIT_SECRET_KEY": SECRET_KEY,
        "CREDIT_MODULES_EXTRA": modules,
        "CREDIT_EVENTS_SWEEP_SECONDS": str(sweep_seconds),
        "CREDIT_EVENTS_BATCH_SIZE": "500",
        **{f"CREDIT_{name.upper()}": value for name, value in settings.items()},
    }


def start_workers(
    count: int, env: dict, workdir: Path, concurrency: int = 2, priority: tuple[str, ...] = BACKGROUND
) -> list[subprocess.Popen]:
    procs = []
    for n in range(count):
        with open(workdir / f"worker{n}.log", "ab") as log:
            procs.append(
                subprocess.Popen(
                    [*priority, str(BIN / "credit-system"), "worker", "--concurrency", str(concurrency)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return procs


def signal_workers(procs: list[subprocess.Popen], signum: int) -> None:
    """Send signum to each worker's whole process group (SIGSTOP holds it, SIGCONT resumes)."""
    for proc in procs:
        os.killpg(proc.pid, signum)


def stop_workers(procs: list[subprocess.Popen]) -> None:
    import signal

    for proc in procs:
        os.killpg(proc.pid, signal.SIGCONT)  # one held (SIGSTOP) when a run failed would not hear SIGTERM
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=60)


@contextmanager
def running_workers(
    count: int, env: dict, workdir: Path, priority: tuple[str, ...] = BACKGROUND
) -> Iterator[list[subprocess.Popen]]:
    procs = start_workers(count, env, workdir, priority=priority)
    try:
        yield procs
    finally:
        stop_workers(procs)


def owed(engine) -> tuple[int, int]:
    """(events not relayed, deliveries not done): the modules' event deliveries, and the
    messages and webhooks those handlers queued (sent by the same workers afterwards)."""
    with engine.connect() as conn:
        unstamped = conn.execute(text("SELECT count(*) FROM outbox_events WHERE sequence IS NULL")).scalar()
        pending = conn.execute(
            text("""
            SELECT (SELECT count(*) FROM event_deliveries WHERE status IN ('pending', 'failed'))
                 + (SELECT count(*) FROM notification_deliveries WHERE status = 'queued')
                 + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')""")
        ).scalar()
    return unstamped or 0, pending or 0


def wait_drained(engine, workers: list[subprocess.Popen] | None = None, timeout: float = 600) -> float:
    """Seconds until nothing is owed (polled every 50 ms); RuntimeError if a worker died."""
    started = time.monotonic()
    while owed(engine) != (0, 0):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"backlog not drained in {timeout}s: {owed(engine)}")
        if any(worker.poll() is not None for worker in workers or ()):
            raise RuntimeError("a worker exited; see its log in the bench's work folder")
        time.sleep(0.05)
    return time.monotonic() - started


def insert_events(engine, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO outbox_events (event_id, type, occurred_at, actor_type, data)
            SELECT gen_random_uuid()::text, 'bench.noop', now(), 'system', '{}'
            FROM generate_series(1, :n)"""),
            {"n": count},
        )


def throughput(db_url: str, workdir: Path, events: int, workers: int) -> dict:
    """Relay + delivery of `events` waiting events by `workers` worker processes."""
    engine = create_engine(db_url)
    procs = start_workers(workers, worker_env(db_url, workdir, NOOP), workdir)
    try:
        time.sleep(4)  # started, their sweep running: what follows measures delivery, not start-up
        wait_drained(engine, procs)
        insert_events(engine, events)
        seconds = wait_drained(engine, procs)
    finally:
        stop_workers(procs)
        engine.dispose()
    return {"events": events, "workers": workers, "seconds": round(seconds, 2), "per_second": round(events / seconds)}


def latency_under_load(db_url: str, workdir: Path, seconds: float, threads: int, rate: float) -> dict:
    """Transfers on `threads` threads for `seconds`, paced to `rate` per second in all (0: as
    fast as they go), one worker delivering: commit-to-handler times."""
    from app import create_app
    from app.config import load_settings
    from bench import seed
    from bench.subscribers import latencies

    engine = create_engine(db_url)
    from app.services.passwords import Passwords

    users = seed.seed_users(engine, f"lat{int(time.time())}", threads * 2, 1_000_000_000, Passwords().hash(PASSWORD))
    settings = load_settings(
        environ={},
        database_url=db_url,
        cache_url=REDIS,
        queue_url=REDIS,
        instance_path=str(workdir),
        secret_key=SECRET_KEY,
        modules_extra=LATENCY,
    )
    procs = start_workers(1, worker_env(db_url, workdir, LATENCY), workdir)
    app = create_app(settings)
    stop = threading.Event()
    done = [0] * threads

    def load(n: int) -> None:
        client = app.test_client()
        payer, payee = users[2 * n], users[2 * n + 1]
        token = client.post("/auth/login", json={"username": f"{payer_name[n]}", "password": PASSWORD}).get_json()
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

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, username FROM users WHERE id = ANY(:ids)"), {"ids": users}).all()
    names: dict[str, str] = {row[0]: row[1] for row in rows}
    payer_name = [names[users[2 * n]] for n in range(threads)]
    try:
        time.sleep(4)
        pool = [threading.Thread(target=load, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in pool:
            thread.join()
        drain = wait_drained(engine, procs)
    finally:
        stop_workers(procs)
        app.module_manager.shutdown()
    values = sorted(latencies(engine))
    engine.dispose()
    if not values:
        return {"transfers": sum(done), "samples": 0}
    return {
        "transfers": sum(done),
        "transfers_per_second": round(sum(done) / seconds),
        "samples": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(values[int(len(values) * 0.99) - 1] * 1000, 1),
        "drain_after_load_s": round(drain, 2),
    }


def run(
    db_url: str, workdir: Path, events: int = 20_000, load_seconds: float = 10, threads: int = 4, rate: float = 100
) -> dict:
    return {
        "nice": NICE,
        "throughput": [throughput(db_url, workdir, events, workers) for workers in (1, 2)],
        "latency": latency_under_load(db_url, workdir, load_seconds, threads, rate),
        "saturated": latency_under_load(db_url, workdir, load_seconds, threads, 0),
    }


def report(r: dict) -> None:
    print(f"\n== event backbone (workers at nice {r['nice']}, 2 threads each, batches of 500) ==")
    for t in r["throughput"]:
        print(
            f"relay + delivery to a no-op subscriber, {t['workers']} worker(s): {t['events']} events in "
            f"{t['seconds']} s = {t['per_second']} events/s"
        )
    for label, lat in (("steady load", r["latency"]), ("saturating load", r["saturated"])):
        if lat.get("samples"):
            print(
                f"commit-to-handler latency, {label} ({lat['transfers']} transfers, {lat['transfers_per_second']}/s "
                f"in process): p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms; backlog drained "
                f"{lat['drain_after_load_s']} s after the load stopped"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--load-seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100, help="transfers per second of the steady load")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="credit-bench-events-"))
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    with scratch_database("credit_bench_events") as db_url:
        report(run(db_url, workdir, args.events, args.load_seconds, args.threads, args.rate))
    print(f"worker logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
