"""`python -m bench.trigger_cost`: what the balance trigger (migration 0002) costs a transfer.

Builds the app on a scratch PostgreSQL database and the bench Redis database (as
bench.profile does) and posts transfers with an Idempotency-Key through the WSGI app, one
at a time, in batches that alternate between the trigger enabled and disabled (`ALTER
TABLE ledger_entries DISABLE TRIGGER`; which state goes first alternates too). It prints
the wall-clock time per transfer of each state (median of the batches) and their ratio.
Wall clock, not process CPU: the trigger's work is PostgreSQL's, at COMMIT. It also
prints the time PostgreSQL itself counted inside the trigger's function
(pg_stat_user_functions, with track_functions on for the scratch database), which a
busy machine disturbs far less than the wall clock.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import seed
from bench.profile import call
from bench.seed import PASSWORD, REDIS, scratch_database, settings_for

TRIGGER = "ledger_entries_balance"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=300, help="transfers per batch")
    parser.add_argument("--rounds", type=int, default=6, help="batches per state")
    args = parser.parse_args()

    import redis

    from app import build_container, create_app
    from app.services.passwords import Passwords

    workdir = Path(tempfile.mkdtemp(prefix="credit-trigger-"))
    with scratch_database("credit_trigger") as db_url:
        engine = create_engine(db_url)
        with engine.begin() as conn:  # for sessions opened from now on: the app's
            conn.execute(text(f"ALTER DATABASE \"{engine.url.database}\" SET track_functions = 'pl'"))
        users = seed.seed_users(engine, "trig", 200, 1_000_000_000, Passwords().hash(PASSWORD))
        seed.analyze(engine)
        redis.Redis.from_url(REDIS).flushdb()
        logging.disable(logging.CRITICAL)  # access lines cost the same either way; keep them out
        settings = settings_for(db_url, REDIS, workdir)
        container = build_container(settings)
        app = create_app(settings, container=container)
        container.user_service().ensure_admin("benchadmin", "benchadmin@example.com", PASSWORD)
        login = {"username": "benchadmin", "password": PASSWORD}
        token = app.test_client().post("/auth/login", json=login).get_json()["access_token"]

        def transfer() -> None:
            a, b = random.sample(users, 2)
            body = {"from_user_id": a, "to_user_id": b, "amount": 1}
            assert call(app, "POST", "/transactions", token, body, key=uuid.uuid4().hex) == 201

        def batch(enabled: bool) -> float:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE ledger_entries {'ENABLE' if enabled else 'DISABLE'} TRIGGER {TRIGGER}"))
            started = time.perf_counter()
            for _ in range(args.transfers):
                transfer()
            return (time.perf_counter() - started) / args.transfers

        for _ in range(200):  # warm: pools, prepared statements, caches
            transfer()
        times: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(args.rounds):
            for enabled in (True, False) if round_ % 2 == 0 else (False, True):
                times[enabled].append(batch(enabled))
        app.module_manager.shutdown()  # its sessions end, flushing their statistics
        with engine.connect() as conn:
            calls, self_ms = conn.execute(
                text(
                    "SELECT calls, self_time FROM pg_stat_user_functions WHERE funcname = 'ledger_transaction_balances'"
                )
            ).one()
        engine.dispose()

    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"transfers through the route, one at a time: {args.rounds} batches of {args.transfers} per state, alternating"
    )
    for label, values in (("trigger enabled ", times[True]), ("trigger disabled", times[False])):
        spread = ", ".join(f"{value * 1e3:.2f}" for value in values)
        print(f"  {label}: {statistics.median(values) * 1e3:.3f} ms per transfer (median; batches: {spread})")
    print(f"  enabled / disabled: {on / off:.3f} ({(on - off) * 1e6:+.0f} us per transfer)")
    each = self_ms * 1e3 / calls  # it runs once per entry: twice per transfer
    print(
        f"inside the trigger's function (PostgreSQL's count): {calls} calls, {each:.1f} us each, "
        f"{2 * each:.1f} us per transfer"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
