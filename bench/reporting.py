"""`python -m bench.reporting`: reports stay flat as the ledger grows.

For each size (1,000 and 1,000,000 transactions by default) it seeds a scratch PostgreSQL
database at migration 0005 in SQL (200 funded users, then deposits, withdrawals and
transfers spread over the last 60 days), upgrades it to head, so migration 0006 backfills
`balance_after` and 0009 folds the history into the report aggregates, and then times
through the app's WSGI interface (no HTTP server sharing the CPU): a 30-day daily summary
(UTC, and Europe/Berlin for comparison: as repeated, with today changed before each, and with
no active-user count kept) and a wallet's balance `as_of` a random past moment,
as p50 of many requests, and prints the large/small ratio of each (target <= 1.5). On the
large database it also streams a CSV statement of 100,000 entries and one of 10,000, and
prints the Python heap's peak while each streamed (tracemalloc): constant memory means the
two peaks are alike.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import seed
from bench.seed import PASSWORD, REDIS, settings_for

USERS = 200
SPAN_DAYS = 60
ADMIN = "benchreports"


@contextmanager
def database_before_reports() -> Iterator[str]:
    from app.infrastructure.migrations import upgrade

    name = f"credit_bench_reporting_{uuid.uuid4().hex[:8]}"
    admin = create_engine(seed.PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = seed.PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url, "0005")
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_history(url: str, transactions: int) -> None:
    """USERS users, each first funded with a deposit, then `transactions` more spread over
    SPAN_DAYS: every 10th a deposit, every 10th (+5) a withdrawal of 1, the rest transfers of 1."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_balance"))  # balanced by build
        conn.execute(
            text("""
            INSERT INTO users (id, username, username_key, email, email_key, password_hash, role, is_active,
                               token_version, created_at, updated_at)
            SELECT 'u' || lpad(g::text, 35, '0'), 'rep' || g, 'rep' || g, 'rep' || g || '@example.com',
                   'rep' || g || '@example.com', 'x', 'user', true, 0, now() - interval '61 days', now()
            FROM generate_series(0, :u - 1) g"""),
            {"u": USERS},
        )
        conn.execute(
            text("""
            INSERT INTO accounts (id, user_id, kind, balance, version, created_at, updated_at)
            SELECT 'a' || substr(id, 2), id, 'user', 0, 0, created_at, now() FROM users WHERE username LIKE 'rep%'""")
        )
        # g < USERS: the funding deposits; then the mix, one every SPAN_DAYS / n.
        conn.execute(
            text("""
            INSERT INTO transactions (id, type, amount, from_user_id, to_user_id, created_by, created_at)
            SELECT md5('rt' || g)::uuid::text,
                   CASE WHEN g < :u OR g % 10 = 0 THEN 'deposit' WHEN g % 10 = 5 THEN 'withdrawal' ELSE 'transfer' END,
                   CASE WHEN g < :u THEN 1000000000 WHEN g % 10 = 0 THEN 1000 ELSE 1 END,
                   CASE WHEN g >= :u AND g % 10 <> 0 THEN 'u' || lpad((g % :u)::text, 35, '0') END,
                   CASE WHEN g < :u OR g % 10 = 0 THEN 'u' || lpad((g % :u)::text, 35, '0')
                        WHEN g % 10 <> 5 THEN 'u' || lpad(((g * 7 + 3 + CASE WHEN (g * 7 + 3) % :u = g % :u
                                                             THEN 1 ELSE 0 END) % :u)::text, 35, '0') END,
                   'bench',
                   now() - interval '1 minute' - (:n + :u - g) * (interval '1 day' * :span / (:n + :u))
            FROM generate_series(0, :n + :u - 1) g"""),
            {"u": USERS, "n": transactions, "span": SPAN_DAYS},
        )
        conn.execute(
            text("""
            INSERT INTO ledger_entries (transaction_id, account_id, amount, tx_type, created_at)
            SELECT t.id, leg.account_id, leg.amount, t.type, t.created_at
            FROM transactions t
            CROSS JOIN LATERAL (
                SELECT CASE WHEN t.type = 'deposit' THEN 'system:issuance' ELSE 'a' || substr(t.from_user_id, 2) END,
                       -t.amount, 1
                UNION ALL
                SELECT CASE WHEN t.type = 'withdrawal' THEN 'system:redemption' ELSE 'a' || substr(t.to_user_id, 2)
                       END, t.amount, 2
            ) AS leg(account_id, amount, o)
            ORDER BY t.created_at, leg.o""")
        )
        conn.execute(
            text("""
            UPDATE accounts a SET balance = s.total, version = s.n
            FROM (SELECT account_id, sum(amount) AS total, count(*) AS n FROM ledger_entries GROUP BY account_id) s
            WHERE a.id = s.account_id AND a.kind = 'user'""")
        )
        conn.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_balance"))
    engine.dispose()


def _percentile50(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def measure(url: str, workdir: Path, requests_each: int, statement: bool) -> dict:
    import redis

    from app import build_container, create_app

    redis.Redis.from_url(REDIS).flushdb()
    settings = settings_for(url, REDIS, workdir)
    container = build_container(settings)
    container.user_service().ensure_admin(ADMIN, f"{ADMIN}@example.com", PASSWORD)
    container.database().dispose()
    app = create_app(settings)
    client = app.test_client()
    token = client.post("/auth/login", json={"username": ADMIN, "password": PASSWORD}).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    engine = app.container.database().engine
    seed.analyze(engine)
    with engine.connect() as conn:
        entries = conn.scalar(text("SELECT count(*) FROM ledger_entries"))
        transactions = conn.scalar(text("SELECT count(*) FROM transactions"))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {
        "from": (today - timedelta(days=29)).date().isoformat(),
        "to": (today + timedelta(days=1)).date().isoformat(),
    }

    def timed(path: str, params: dict) -> float:
        started = time.perf_counter()
        response = client.get(path, query_string=params, headers=headers)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.get_json()
        return elapsed

    def after(statement: str, path: str, params: dict) -> float:
        with engine.begin() as conn:
            conn.execute(text(statement), {"today": today})
        return timed(path, params)

    out: dict = {"transactions": transactions, "entries": entries}
    for label, tz in (("summary_utc", "UTC"), ("summary_berlin", "Europe/Berlin")):
        params = {**window, "interval": "day", "tz": tz}
        for _ in range(5):
            timed("/reports/summary", params)
        out[f"{label}_p50_ms"] = _percentile50([timed("/reports/summary", params) for _ in range(requests_each)])
    # Berlin's buckets are not UTC days: added up from quarter-hour edges and the activity rows
    # and kept until a day they overlap changes. Cold: nothing kept, every bucket added up.
    # Live: today's version raised before each request, as the handler does for each batch of
    # today's activity, so the two buckets overlapping today are counted again.
    berlin = {**window, "interval": "day", "tz": "Europe/Berlin"}
    out["summary_berlin_cold_p50_ms"] = _percentile50(
        [
            after("DELETE FROM report_kept_buckets", "/reports/summary", berlin)
            for _ in range(max(5, requests_each // 5))
        ]
    )
    bump = (
        "INSERT INTO report_day_versions (day, version) VALUES (:today, 1) "
        "ON CONFLICT (day) DO UPDATE SET version = report_day_versions.version + 1"
    )
    out["summary_berlin_live_p50_ms"] = _percentile50(
        [after(bump, "/reports/summary", berlin) for _ in range(requests_each)]
    )
    rng = random.Random(15)
    start = datetime.now(UTC) - timedelta(days=SPAN_DAYS)
    samples = []
    for n in range(requests_each * 4 + 20):
        user = f"u{rng.randrange(USERS):035d}"
        moment = start + timedelta(seconds=rng.uniform(0, SPAN_DAYS * 86400))
        elapsed = timed(f"/wallet/balance/{user}", {"as_of": moment.isoformat()})
        if n >= 20:
            samples.append(elapsed)
    out["balance_as_of_p50_ms"] = _percentile50(samples)
    if statement:
        out["statement"] = stream_statements(app, engine, headers)
    app.container.database().dispose()
    return out


def stream_statements(app, engine, headers: dict) -> list[dict]:
    """A user with 100,000 entries: its CSV statement of all of them and of its last 10,000,
    streamed through the app; rows, seconds and the Python heap's peak while streaming."""
    (heavy,) = seed.seed_users(engine, "stmt", 1, 1, "x")
    seed.add_deposits(engine, heavy, 100_000, 1)
    with engine.connect() as conn:
        cut = conn.scalar(
            text(
                "SELECT created_at FROM transactions WHERE to_user_id = :u ORDER BY created_at DESC OFFSET 9999 LIMIT 1"
            ),
            {"u": heavy},
        )
    client = app.test_client()
    results = []
    for label, params in (("100k", {"format": "csv"}), ("10k", {"format": "csv", "from": cut.isoformat()})):
        tracemalloc.start()
        started = time.perf_counter()
        response = client.get(f"/wallet/statement/{heavy}", query_string=params, headers=headers, buffered=False)
        assert response.status_code == 200
        rows = 0
        for chunk in response.response:
            rows += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
        response.close()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results.append({"label": label, "rows": rows - 1, "seconds": round(elapsed, 2), "peak_kib": peak // 1024})
    return results


def run(small: int = 1_000, large: int = 1_000_000, requests_each: int = 50) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="credit-bench-reporting-"))
    sizes = {}
    for size in (small, large):
        with database_before_reports() as url:
            from app.infrastructure.migrations import upgrade

            started = time.perf_counter()
            seed_history(url, size)
            seeded = time.perf_counter()
            upgrade(url)  # 0006 backfills balance_after, 0009 the aggregates
            migrated = time.perf_counter()
            sizes[size] = measure(url, workdir, requests_each, statement=size == large)
            sizes[size]["seed_s"] = round(seeded - started, 1)
            sizes[size]["migrate_s"] = round(migrated - seeded, 1)
    return {"small": sizes[small], "large": sizes[large]}


def report(r: dict) -> None:
    small, large = r["small"], r["large"]
    print("\n== reports: flat as the ledger grows (PostgreSQL, through the WSGI interface) ==")
    for row in (small, large):
        print(
            f"{row['transactions']:>9,} transactions ({row['entries']:,} entries; seeded in {row['seed_s']} s, "
            f"migrations 0006-0009 backfilled in {row['migrate_s']} s): 30-day daily summary p50 "
            f"{row['summary_utc_p50_ms']} ms (UTC), {row['summary_berlin_p50_ms']} ms (Europe/Berlin; "
            f"{row['summary_berlin_live_p50_ms']} ms with today changed before each, "
            f"{row['summary_berlin_cold_p50_ms']} ms with nothing kept); "
            f"balance as_of p50 {row['balance_as_of_p50_ms']} ms"
        )
    for key, label in (
        ("summary_utc_p50_ms", "summary (UTC)"),
        ("summary_berlin_p50_ms", "summary (Europe/Berlin)"),
        ("summary_berlin_live_p50_ms", "summary (Europe/Berlin, today changed before each)"),
        ("summary_berlin_cold_p50_ms", "summary (Europe/Berlin, nothing kept)"),
        ("balance_as_of_p50_ms", "balance as_of"),
    ):
        ratio = large[key] / small[key]
        target = (
            "no target: counting grows with the active users per day, 200 here at a million"
            if key == "summary_berlin_cold_p50_ms"
            else "target <= 1.5"
        )
        print(f"ratio large/small, {label}: {ratio:.2f} ({target})")
    for s in large.get("statement", []):
        print(
            f"statement CSV of {s['rows']:,} entries streamed in {s['seconds']} s, Python heap peak {s['peak_kib']} KiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per summary figure")
    args = parser.parse_args()
    report(run(args.small, args.large, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
