"""Hand-written fakes of what the ledger runs on: a database of committed postings and
idempotency records, its units of work, the idempotency store's storage and the writers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy.exc import IntegrityError

from app.infrastructure.posting import KeyTaken, WalletState, with_balances
from app.services.idempotency import IdempotencyStore


class FakeDatabase:
    """What is committed: postings, idempotency records (by (user, key)) and recorded events;
    and every unit."""

    def __init__(self) -> None:
        self.postings: list = []
        self.events: list = []
        self.records: dict[tuple[str, str], dict] = {}
        self.units: list[FakeUnitOfWork] = []

    def unit_of_work(self, write: bool = True) -> FakeUnitOfWork:
        unit = FakeUnitOfWork(self, write)
        self.units.append(unit)
        return unit

    @property
    def commits(self) -> int:
        return sum(unit.committed for unit in self.units)

    def expire(self, user_id: str, key: str) -> None:
        self.records[(user_id, key)]["expires_at"] = datetime.now(UTC) - timedelta(seconds=1)


class FakeUnitOfWork:
    """The UnitOfWork contract: writes wait in `pending` until commit; leaving drops them."""

    def __init__(self, database: FakeDatabase, write: bool) -> None:
        self.database, self.write = database, write
        self.session = SimpleNamespace(pending=[])
        self.committed = False
        self._after_commit: list = []

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc_info) -> None:
        self.session.pending.clear()

    def after_commit(self, callback) -> None:
        self._after_commit.append(callback)

    def record(self, domain_event) -> None:
        self.session.pending.append(lambda database: database.events.append(domain_event))

    def commit(self) -> None:
        for apply in self.session.pending:
            apply(self.database)
        self.session.pending.clear()
        self.committed = True
        for callback in self._after_commit:
            callback()

    def rollback(self) -> None:
        self.session.pending.clear()
        self._after_commit.clear()


def key_taken() -> IntegrityError:
    return IntegrityError("INSERT INTO idempotency_keys ...", {}, Exception("duplicate key"))


class FakeIdempotencyStore(IdempotencyStore):
    """The real store's rules (record(), answer()) over the fake database's records."""

    def __init__(self, database: FakeDatabase, ttl_seconds: int = 60) -> None:
        super().__init__(ttl_seconds)
        self.database = database
        self.saves: list[tuple[str, bool]] = []  # (key, take_over) of each save()

    def find(self, session, request):
        record = self.database.records.get((request.user_id, request.key))
        return self.answer(SimpleNamespace(**record) if record else None, request)

    def save(self, session, request, outcome, take_over=False) -> None:
        self.saves.append((request.key, take_over))
        held = self.database.records.get((request.user_id, request.key))
        if held is not None and not (take_over and held["expires_at"] <= datetime.now(UTC)):
            raise key_taken()
        insert_record(session, self.record(request, outcome))


def insert_record(session, record: dict) -> None:
    session.pending.append(lambda database: database.records.__setitem__((record["user_id"], record["key"]), record))


class FakeWriter:
    """Writes a posting (and the record given with it) into the fake database's unit.

    `refuse`: an exception to raise instead (a `Refused`, or `NotAsSent`). `key_taken`: what
    a record whose key is held raises (`KeyTaken` as step by step, `NotAsSent` as the function writer).
    """

    def __init__(self, refuse: Exception | None = None, key_taken: type[Exception] = KeyTaken) -> None:
        self.refuse, self.key_taken = refuse, key_taken
        self.writes: list[tuple[object, dict | None]] = []  # (posting, record) of each call
        self.finals: list[bool] = []  # whether each call was told it was its unit's last write

    def write(self, uow, posting, record=None, event=None, final=False) -> list[WalletState]:
        self.writes.append((posting, record))
        self.finals.append(final)
        if self.refuse is not None:
            raise self.refuse
        uow.session.pending.append(lambda database: database.postings.append(posting))
        if record is not None:
            if (record["user_id"], record["key"]) in uow.database.records:
                raise self.key_taken()
            insert_record(uow.session, record)
        states = [WalletState(leg.user_id, 100 + leg.amount, 2) for leg in posting.wallet_legs]
        if event is not None:
            uow.record(with_balances(event, states))
        return states


class FakeRenderer:
    def success(self, view) -> dict:
        return {"id": view.id, "type": view.type, "amount": view.amount}

    def failure(self, error) -> dict:
        return {"error": {"code": error.code, "details": error.details}}


class FakeBalances:
    def __init__(self) -> None:
        self.stored: list = []

    def store_many(self, balances) -> None:
        self.stored.extend(balances)
