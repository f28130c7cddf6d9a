"""How a posting reaches the database: its SQL, and two writers behind one small interface.

A writer updates the stored balance of each wallet a posting touches, in user-id order
(so concurrent postings never deadlock) and guarded on the UPDATE itself (a debit only if
the balance stays >= 0, a leg marked `active` only if its user is active); then it inserts
the transaction, its entries (a wallet's entry carrying the wallet's `balance_after`),
when given one, the idempotency record, and the posting's event with each wallet's balance
after; it returns the wallets' new balances. `StepByStepWriter` runs one statement at a
time and, when a guard refuses, finds out why (`Refused`). `FunctionWriter` makes the whole
posting one call of a PostgreSQL function, in one round trip, and cannot tell why; it
raises `NotAsSent` and the ledger redoes the posting step by step. Nothing here knows HTTP
or the domain's errors; docs/ledger.md has the map.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import BigInteger, String, Table, Text, bindparam, column, exists, insert, select, text, true, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from app.infrastructure.database import UnitOfWork
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.statements import Precompiled
from app.infrastructure.tables import (
    Account,
    IdempotencyKey,
    LedgerEntry,
    OutboxEvent,
    Transaction,
    User,
    utcnow,
)


class PostingLeg(Protocol):
    """What a writer reads of a leg (`app.services.ledger.Leg`)."""

    @property
    def amount(self) -> int: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def account_id(self) -> str | None: ...
    @property
    def field(self) -> str: ...
    @property
    def active(self) -> bool: ...


class PostingRows(Protocol):
    """What a writer reads of a posting (`app.services.ledger.Posting`): the transaction's
    columns, its legs, and its wallet legs in user-id order."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def from_user_id(self) -> str | None: ...
    @property
    def to_user_id(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...
    @property
    def reverses(self) -> str | None: ...
    @property
    def created_by(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def legs(self) -> Sequence[PostingLeg]: ...
    @property
    def wallet_legs(self) -> Sequence[PostingLeg]: ...


class WalletState(NamedTuple):
    """A wallet's balance and row version as a posting left them."""

    user_id: str
    balance: int
    version: int


class PostingWriter(Protocol):
    def write(
        self,
        uow: UnitOfWork,
        posting: PostingRows,
        record: dict | None = None,
        event: DomainEvent | None = None,
        final: bool = False,
    ) -> list[WalletState]:
        """Write posting (and record, an idempotency row claiming its key for the first
        time: a plain insert) in uow's transaction, record event with the wallets'
        balances after (`with_balances`); the wallets' new states. `final`: nothing else
        will be written in the unit, so a writer may commit it with the posting.

        Raises `Refused` (why the posting cannot be written), `KeyTaken`, or `NotAsSent`
        (not written as sent, reason unknown: redo it with `StepByStepWriter`, which never
        raises it). Either way the unit must then be rolled back.
        """
        ...


class Refused(Exception):
    """A guard refused the posting; the subclass says why."""


class UnknownUser(Refused):
    pass


class InactiveUser(Refused):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field  # the request field that named the user


class Overdrawn(Refused):
    def __init__(self, balance: int, requested: int) -> None:
        super().__init__(balance, requested)
        self.balance, self.requested = balance, requested


class NotAsSent(Exception):
    """A posting did not go through as sent; redo it step by step to learn why."""


class KeyTaken(Exception):
    """The idempotency record's key is already held (committed, or being committed)."""


# The statements, built once (constructing and cache-keying a statement costs several
# times what executing it does) and run as Precompiled: see that module for why.
_accounts, _transactions, _entries, _users, _records, _outbox = (
    cast(Table, model.__table__) for model in (Account, Transaction, LedgerEntry, User, IdempotencyKey, OutboxEvent)
)
_CREDIT = (
    update(_accounts)
    .where(_accounts.c.user_id == bindparam("wallet_user_id"), _accounts.c.kind == "user")
    .values(
        balance=_accounts.c.balance + bindparam("delta", type_=_accounts.c.balance.type),
        version=_accounts.c.version + 1,
        updated_at=bindparam("now", type_=_accounts.c.updated_at.type),
    )
    .returning(_accounts.c.id, _accounts.c.balance, _accounts.c.version)
)
# A debit only happens if the balance stays >= 0; an `active` leg only if its user is active.
_DEBIT = _CREDIT.where(_accounts.c.balance >= bindparam("needed", type_=_accounts.c.balance.type))
_OWNER_ACTIVE = exists().where(_users.c.id == _accounts.c.user_id, _users.c.is_active.is_(true()))
_UPDATES = {  # by (is the leg a debit, must its user be active)
    (False, False): _CREDIT,
    (True, False): _DEBIT,
    (False, True): _CREDIT.where(_OWNER_ACTIVE),
    (True, True): _DEBIT.where(_OWNER_ACTIVE),
}
_WALLET_UPDATE = {shape: Precompiled(statement) for shape, statement in _UPDATES.items()}
_INSERT_TRANSACTION = Precompiled(insert(_transactions), column_keys=[c.key for c in _transactions.c])
INSERT_RECORD = Precompiled(insert(_records), column_keys=[c.key for c in _records.c])
_ENTRY_COLUMNS = ("transaction_id", "amount", "tx_type", "created_at", "account_id", "balance_after")
_USERS_ACTIVE = select(_users.c.id, _users.c.is_active).where(_users.c.id.in_(bindparam("ids", expanding=True)))
_WALLET = select(Account).where(Account.user_id == bindparam("user_id"))
_REVERSED_BY = select(_transactions.c.reverses, _transactions.c.id).where(
    _transactions.c.reverses.in_(bindparam("ids", expanding=True))
)


@lru_cache(maxsize=32)
def _insert_entries(legs: int) -> Precompiled:
    """One INSERT of all of a posting's legs, each with its account and balance_after given
    (`account_id_<n>`, `balance_after_<n>`: None on a system account)."""
    rows = [
        {column: bindparam(f"{column}_{leg}", type_=_entries.c[column].type) for column in _ENTRY_COLUMNS}
        for leg in range(legs)
    ]
    return Precompiled(insert(_entries).values(rows))


def _update_params(leg: PostingLeg, now: datetime) -> dict:
    params = {"wallet_user_id": leg.user_id, "delta": leg.amount, "now": now}
    if leg.amount < 0:
        params["needed"] = -leg.amount
    return params


def _transaction_row(posting: PostingRows) -> dict:
    return {
        "id": posting.id,
        "type": posting.type,
        "amount": posting.amount,
        "from_user_id": posting.from_user_id,
        "to_user_id": posting.to_user_id,
        "description": posting.description,
        "reverses": posting.reverses,
        "created_by": posting.created_by,
        "created_at": posting.created_at,
    }


def _entry_params(posting: PostingRows) -> dict:
    """The entries' parameters but their accounts and balances after."""
    params: dict[str, object] = {}
    for n, leg in enumerate(posting.legs):
        params[f"transaction_id_{n}"] = posting.id
        params[f"amount_{n}"] = leg.amount
        params[f"tx_type_{n}"] = posting.type
        params[f"created_at_{n}"] = posting.created_at
    return params


class StepByStepWriter:
    """One statement at a time; a refused update is diagnosed before anything else is sent."""

    def write(
        self,
        uow: UnitOfWork,
        posting: PostingRows,
        record: dict | None = None,
        event: DomainEvent | None = None,
        final: bool = False,
    ) -> list[WalletState]:
        session, now = uow.session, posting.created_at
        account_of: dict[str | None, str] = {}
        states: list[WalletState] = []
        for leg in posting.wallet_legs:
            account_id, balance, version = self._apply(session, leg, posting.wallet_legs, now)
            account_of[leg.user_id] = account_id
            states.append(WalletState(cast(str, leg.user_id), balance, version))
        _INSERT_TRANSACTION.execute(session, _transaction_row(posting))
        entries = _entry_params(posting)
        balance_of = {state.user_id: state.balance for state in states}
        for n, leg in enumerate(posting.legs):
            entries[f"account_id_{n}"] = account_of.get(leg.user_id, leg.account_id)
            entries[f"balance_after_{n}"] = balance_of.get(cast(str, leg.user_id))
        _insert_entries(len(posting.legs)).execute(session, entries)
        if record is not None:
            try:
                INSERT_RECORD.execute(session, record)
            except IntegrityError:
                raise KeyTaken() from None
        if event is not None:
            uow.record(with_balances(event, states))
        return states

    @staticmethod
    def _apply(session: Session, leg: PostingLeg, wallet_legs: Sequence[PostingLeg], now: datetime) -> tuple:
        """The leg's guarded update: (account id, balance, version), or why it was refused.

        The common case is one statement; only a refused update pays for finding out why:
        the users first (unknown, then inactive, in user order), then the balance.
        """
        params = _update_params(leg, now)
        statement = _WALLET_UPDATE[(leg.amount < 0, leg.active)]
        result = next(iter(statement.execute(session, params)), None)
        if result is None:
            check_users(session, ((cast(str, other.user_id), other.field, other.active) for other in wallet_legs))
            current = ensure_wallet(session, cast(str, leg.user_id))
            if leg.amount < 0:
                raise Overdrawn(balance=cast(int, current.balance), requested=-leg.amount)
            (result,) = statement.execute(session, params)  # its wallet did not exist until now
        return result


# PostgreSQL's credit_post() (migration 0011): the whole posting in one statement. Its
# arguments, in its order: the transaction's columns, the legs, the record's, the event's.
_TX_COLUMNS = (  # _transaction_row()'s keys
    "id",
    "type",
    "amount",
    "from_user_id",
    "to_user_id",
    "description",
    "reverses",
    "created_by",
    "created_at",
)
_ARRAYS = {  # the legs, in posting order, sent as array literals (array_literal) and cast
    "leg_user_ids": "VARCHAR[]",
    "leg_account_ids": "VARCHAR[]",
    "leg_amounts": "BIGINT[]",
    "leg_active": "BOOLEAN[]",
}
_KEY_COLUMNS = ("user_id", "key", "request_hash", "status_code", "response_body", "created_at", "expires_at")
_EVENT_COLUMNS = (
    "event_id",
    "type",
    "occurred_at",
    "actor_type",
    "actor_id",
    "request_id",
    "remote_addr",
    "target_type",
    "target_id",
)


def _function_call() -> Precompiled:
    def typed(prefix: str, table: Table, columns: Sequence[str]) -> list[Any]:
        return [bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in columns]

    binds = [
        *typed("tx_", _transactions, _TX_COLUMNS),
        *(bindparam(name) for name in _ARRAYS),
        *typed("key_", _records, _KEY_COLUMNS),
        *typed("ev_", _outbox, _EVENT_COLUMNS),
        bindparam("ev_data_head", type_=Text()),
    ]
    arguments = ", ".join(
        f"CAST(:{bind.key} AS {_ARRAYS[bind.key]})" if bind.key in _ARRAYS else f":{bind.key}" for bind in binds
    )
    call = text(f"SELECT user_id, balance, version FROM credit_post({arguments})").bindparams(*binds)
    returned = (column("user_id", String), column("balance", BigInteger), column("version", BigInteger))
    return Precompiled(call.columns(*returned))


_POST = _function_call()


class FunctionWriter:
    """PostgreSQL: the whole posting is one call of `credit_post()` (migration 0011): the
    wallets' guarded updates in user-id order, the transaction, its entries, the record
    and the event, with each wallet's balance after in the event's data.

    When the writer is told the posting is the unit's last write (`final`) and the unit
    has done nothing on the database yet, the call runs as its own transaction: one round
    trip, no BEGIN and no COMMIT, and the unit's commit afterwards has nothing left to send
    (it still runs the after-commit work and wakes the relay). Otherwise the call joins
    the unit's transaction.

    A refused guard raises inside the function, so nothing of the posting stays; like any
    other refusal by the database (a missing wallet, a value it refuses, a key already
    taken) it surfaces as `NotAsSent`, and the ledger redoes the posting step by step,
    which can say why. An event an in-transaction subscriber wants (app.infrastructure.
    database.EventBus) is recorded in the unit instead, where that subscriber gets it.
    """

    def write(
        self,
        uow: UnitOfWork,
        posting: PostingRows,
        record: dict | None = None,
        event: DomainEvent | None = None,
        final: bool = False,
    ) -> list[WalletState]:
        session = uow.session
        self._require_postgresql(session)
        in_statement = event is not None and not uow.dispatches(event.type)
        params = _call_params(posting, record, event if in_statement else None)
        try:
            if final and in_statement and uow.pristine():
                with uow.committing_alone() as connection:
                    rows = _POST.execute_on(connection, params)
            else:
                rows = _POST.execute(session, params)
        except (IntegrityError, DataError):
            # A refused guard, an entry without a wallet, an id longer than any stored (an
            # unknown user), a key already taken, or a race: only step by step can tell which.
            raise NotAsSent() from None
        states = [WalletState(user_id, balance, version) for user_id, balance, version in rows]
        if in_statement:
            uow.note_events_written()
        elif event is not None:
            uow.record(with_balances(event, states))
        return states

    @staticmethod
    def _require_postgresql(session: Session) -> None:
        if session.bind is None or session.bind.dialect.name != "postgresql":
            raise TypeError("FunctionWriter needs PostgreSQL; other databases take StepByStepWriter")


def with_balances(event: DomainEvent, states: Sequence[WalletState]) -> DomainEvent:
    """The posting's event with each wallet's balance after (the last, for a wallet in two legs)."""
    return replace(event, data={**event.data, "balances": {state.user_id: state.balance for state in states}})


def _call_params(posting: PostingRows, record: dict | None, event: DomainEvent | None) -> dict:
    legs = posting.legs
    params: dict[str, Any] = {f"tx_{name}": value for name, value in _transaction_row(posting).items()}
    params.update(
        leg_user_ids=array_literal([leg.user_id for leg in legs]),
        leg_account_ids=array_literal([None if leg.user_id else leg.account_id for leg in legs]),
        leg_amounts=array_literal([leg.amount for leg in legs]),
        leg_active=array_literal([leg.active for leg in legs]),
    )
    for name in _KEY_COLUMNS:
        params[f"key_{name}"] = record[name] if record is not None else None
    row = event.row(utcnow()) if event is not None else {}
    for name in _EVENT_COLUMNS:
        params[f"ev_{name}"] = row.get(name)
    # The data as DomainEvent.row() wrote it, left open for the function to add "balances" last.
    params["ev_data_head"] = row["data"][:-1] + ("," if event.data else "") + '"balances":' if event else None
    return params


def array_literal(values: Sequence[str | int | bool | None]) -> str:
    """A PostgreSQL array literal (`{"a","b"}`, `{-5,5}`, `{t,f}`), for the call to cast.

    Passed a list, the driver inspects it on every call to choose an array type and an
    element dumper: 125,000 instructions for the four leg arrays of a transfer, against
    ~20,000 to write the literals (python -m bench.instructions transfer). Strings are
    always quoted, with backslash and quote escaped, so no value can end an element early,
    and the string "NULL" stays a string.
    """
    return "{" + ",".join(map(_array_element, values)) + "}"


def _array_element(value: str | int | bool | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):  # before int: True is an int
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def writer_for(database_url: str) -> str:
    """Which writer a database takes: "function" on PostgreSQL, "step_by_step" elsewhere."""
    return "function" if make_url(database_url).get_backend_name() == "postgresql" else "step_by_step"


# -- reads: why a posting was refused, and what the services ask of wallets ----------------
def check_users(session: Session, checks: Iterable[tuple[str, str, bool]]) -> None:
    """Each (user_id, field, must_be_active), in order: UnknownUser, or InactiveUser(field).

    One query for all of them.
    """
    checks = list(checks)
    ids = sorted({user_id for user_id, _, _ in checks})
    active: dict[str, bool] = {
        user_id: is_active for user_id, is_active in session.execute(_USERS_ACTIVE, {"ids": ids})
    }
    for user_id, field, must_be_active in checks:
        if user_id not in active:
            raise UnknownUser()
        if must_be_active and not active[user_id]:
            raise InactiveUser(field)


def ensure_wallet(session: Session, user_id: str) -> Account:
    """The user's wallet, created at zero on first use if the user predates wallets."""
    account = session.scalar(_WALLET, {"user_id": user_id})
    if account is None:
        account = Account(id=str(uuid.uuid4()), user_id=user_id, kind="user", balance=0, version=0)
        session.add(account)
        session.flush()
    return account


def reversed_by(session: Session, transaction_ids: list[str]) -> dict[str, str]:
    """{original id: id of the reversal} for those of transaction_ids that were reversed."""
    if not transaction_ids:
        return {}
    return {original: reversal for original, reversal in session.execute(_REVERSED_BY, {"ids": transaction_ids})}


def balance_as_of(session: Session, account_id: str, moment: datetime) -> int:
    """The wallet's balance at `moment`: its last entry's balance_after before then (0 if none).

    One lookup on (account_id, created_at, id), however long the wallet's history.
    """
    return session.scalar(_BALANCE_AS_OF, {"account_id": account_id, "moment": moment}) or 0


_BALANCE_AS_OF = (
    select(_entries.c.balance_after)
    .where(_entries.c.account_id == bindparam("account_id"), _entries.c.created_at < bindparam("moment"))
    .order_by(_entries.c.created_at.desc(), _entries.c.id.desc())
    .limit(1)
)
