"""`python -m bench.audit`: the audit trail's figures, printed as measured.

- append: N events written straight into the outbox (as N commits would leave them), relayed,
  then delivered to audit_module by this process's drain loop, as one worker does: audit
  entries written per second, from the first drain to the last entry.
- verify: a chain of M entries (default 1,000,000), built in bulk with the chain's own hash
  function, walked by `AuditTrail.verify`: entries checked per second.
- list: the median time of a filtered page (by actor, by action, by target, by a time range;
  each also records its `audit.read` event) with 1K entries, and again with M.

Needs PostgreSQL and Redis (CREDIT_BENCH_POSTGRES_URL / CREDIT_BENCH_REDIS_URL); makes and
drops its own database.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from bench.seed import REDIS, scratch_database, settings_for

USERS = 1000
ROUNDS = 30


def _app(db_url: str, workdir: str):
    from app import create_app

    return create_app(settings_for(db_url, REDIS, workdir))


def measure_append(app, events: int) -> float:
    from app.infrastructure.outbox import INSERT_EVENT, DomainEvent
    from app.infrastructure.tables import OutboxEvent
    from app.infrastructure.tables_audit import AuditEntry

    database = app.container.database()
    now = datetime.now(UTC)
    users = [str(uuid.uuid4()) for _ in range(USERS)]
    with database.unit_of_work() as uow:
        for n in range(events):
            who, whom = users[n % USERS], users[(n * 7 + 1) % USERS]
            tx_id = str(uuid.uuid4())
            data = {"transaction": {"id": tx_id, "amount": n + 1, "from_user_id": who, "to_user_id": whom}}
            row = DomainEvent("transaction.posted", tx_id, data, "transaction", actor_id=who).row(now)
            INSERT_EVENT.submit(uow.session, row)
        uow.session.commit()
    with database.unit_of_work(write=False) as uow:
        before = uow.session.scalar(select(func.count()).select_from(AuditEntry))
    while app.events.relay_now():
        pass
    started = time.perf_counter()
    app.events.deliver_pending()
    elapsed = time.perf_counter() - started
    with database.unit_of_work(write=False) as uow:
        written = uow.session.scalar(select(func.count()).select_from(AuditEntry)) - before
        owed = uow.session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sequence.is_(None)))
    assert written >= events and not owed, (written, events, owed)
    return written / elapsed


def grow_chain(app, total: int, users: list[str]) -> None:
    """Append entries in bulk up to `total`, chained exactly as the module chains them."""
    from app.infrastructure.tables_audit import AuditEntry
    from app.services.audit.chain import GENESIS, entry_hash
    from app.services.audit.trail import _row, _timestamp

    engine = app.container.database().engine
    with engine.connect() as conn:
        head = conn.execute(
            select(AuditEntry.sequence, AuditEntry.hash).order_by(AuditEntry.sequence.desc()).limit(1)
        ).first()
    sequence, prev = (head.sequence, head.hash) if head else (0, GENESIS)
    start = datetime.now(UTC) - timedelta(days=365)
    batch: list[dict] = []
    while sequence < total:
        sequence += 1
        occurred_at = start + timedelta(seconds=sequence)
        who = users[sequence % len(users)]
        entry = {
            "sequence": sequence,
            "event_id": str(uuid.uuid4()),
            "occurred_at": _timestamp(occurred_at),
            "action": "transaction.posted" if sequence % 4 else "auth.login_succeeded",
            "actor": {"type": "user", "id": who},
            "target": {"type": "transaction", "id": str(uuid.uuid4())},
            "request_id": uuid.uuid4().hex,
            "remote_addr": "203.0.113.9",
            "data": {"transaction": {"amount": sequence, "from_user_id": who}},
        }
        entry["prev_hash"], entry["hash"] = prev, entry_hash(prev, entry)
        prev = entry["hash"]
        batch.append(_row(entry, occurred_at))
        if len(batch) == 20_000 or sequence == total:
            with engine.begin() as conn:
                conn.execute(insert(AuditEntry), batch)
            batch = []


def measure_verify(app) -> tuple[int, float]:
    started = time.perf_counter()
    verdict = app.container.audit_trail().verify(None)
    elapsed = time.perf_counter() - started
    assert verdict["verified"], verdict
    return verdict["entries_checked"], verdict["entries_checked"] / elapsed


def measure_lists(app, users: list[str]) -> dict[str, float]:
    from app.services.audit.trail import Filters
    from app.services.principal import Principal

    trail, admin = app.container.audit_trail(), Principal(str(uuid.uuid4()), "admin")
    with app.container.database().engine.connect() as conn:
        from app.infrastructure.tables_audit import AuditEntry

        newest, target = conn.execute(
            select(AuditEntry.occurred_at, AuditEntry.target_id).order_by(AuditEntry.sequence.desc()).limit(1)
        ).one()
    cases = {
        "actor": Filters(actor_id=users[17]),
        "action": Filters(action="auth.login_succeeded"),
        "action prefix": Filters(action="transaction."),
        "target": Filters(target_id=target),
        "time range": Filters(since=newest - timedelta(hours=6), until=newest),
    }
    medians = {}
    for name, filters in cases.items():
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            trail.entries(admin, filters, 50, None)
            times.append(time.perf_counter() - started)
        medians[name] = statistics.median(times) * 1000
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000, help="events for the append figure")
    parser.add_argument("--entries", type=int, default=1_000_000, help="chain length for verify and the second list")
    args = parser.parse_args()
    users = [str(uuid.uuid4()) for _ in range(USERS)]
    with scratch_database("audit-module_bench") as db_url, tempfile.TemporaryDirectory() as workdir:
        app = _app(db_url, workdir)
        try:
            grow_chain(app, 1000, users)
            small = measure_lists(app, users)
            rate = measure_append(app, args.events)
            print(f"append: {args.events} events delivered to audit_module by one drain loop: {rate:,.0f} entries/s")
            started = time.perf_counter()
            grow_chain(app, args.entries, users)
            print(f"built a chain of {args.entries:,} entries in {time.perf_counter() - started:.0f} s (bulk insert)")
            checked, speed = measure_verify(app)
            print(f"verify: {checked:,} entries in {checked / speed:.1f} s: {speed:,.0f} entries/s")
            large = measure_lists(app, users)
            print(f"list, median of {ROUNDS} pages of 50 (ms), at 1K entries and at {args.entries:,}:")
            for name in small:
                print(f"  {name:14s} {small[name]:8.2f} {large[name]:8.2f}")
            print(
                json.dumps(
                    {
                        "append_per_s": round(rate),
                        "verify_per_s": round(speed),
                        "list_ms_1k": small,
                        "list_ms_large": large,
                    }
                )
            )
        finally:
            app.module_manager.shutdown()


if __name__ == "__main__":
    main()
