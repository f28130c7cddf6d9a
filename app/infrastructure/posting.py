"""How a posting reaches the database: its SQL, and two writers behind one small interface.

A writer updates the stored balance of each wallet a posting touches, in user-id order
(so concurrent postings never deadlock) and guarded on the UPDATE itself (a debit only if
the balance stays >= 0, a leg marked `active` only if its user is active); then it inserts
the transaction, its entries (a wallet's entry carrying the wallet's `balance_after`) and,
when given one, the idempotency record; it returns the wallets' new balances.
`StepByStepWriter` runs one statement at a time and, when a guard refuses, finds out why
(`Refused`). `PipelinedWriter` sends everything in one round trip on PostgreSQL and cannot
tell why; it raises `NotAsSent` and the ledger redoes the posting step by step. Nothing
here knows HTTP or the domain's errors; docs/ledger.md has the map.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Insert, Table, bindparam, exists, insert, select, true, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from app.infrastructure.database import UnitOfWork
from app.infrastructure.statements import Precompiled, batch
from app.infrastructure.tables import Account, IdempotencyKey, LedgerEntry, Transaction, User


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
    def write(self, uow: UnitOfWork, posting: PostingRows, record: dict | None = None) -> list[WalletState]:
        """Write posting (and record, an idempotency row claiming its key for the first
        time: a plain insert) in uow's transaction; the wallets' new states.

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
    """A pipelined posting did not go through as sent; redo it step by step to learn why."""


class KeyTaken(Exception):
    """The idempotency record's key is already held (committed, or being committed)."""


# The statements, built once (constructing and cache-keying a statement costs several
# times what executing it does) and run as Precompiled: see that module for why.
_accounts, _transactions, _entries, _users, _records = (
    cast(Table, model.__table__) for model in (Account, Transaction, LedgerEntry, User, IdempotencyKey)
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
_ENTRY_COLUMNS = ("transaction_id", "amount", "tx_type", "created_at")
_LOCATION = ("account_id", "balance_after")
_USERS_ACTIVE = select(_users.c.id, _users.c.is_active).where(_users.c.id.in_(bindparam("ids", expanding=True)))
_WALLET = select(Account).where(Account.user_id == bindparam("user_id"))
_REVERSED_BY = select(_transactions.c.reverses, _transactions.c.id).where(
    _transactions.c.reverses.in_(bindparam("ids", expanding=True))
)


# How an entry's statement finds its account and its `balance_after` (None on a system account):
BOUND = "bound"  # both given as parameters (`account_id_<n>`, `balance_after_<n>`): step by step
BY_OWNER = "by_owner"  # the wallet of `owner_<n>`, its balance read back: updated by an earlier statement
UPDATED_HERE = "updated_here"  # the wallet of `owner_<n>`, its balance as the same statement's update left it


@lru_cache(maxsize=32)
def _insert_entries(sources: tuple[str, ...]) -> Precompiled:
    return Precompiled(_entries_statement(sources))


def _entries_statement(sources: tuple[str, ...], wallet: Any = None) -> Insert:
    """One INSERT of all of a posting's legs, each leg's account and balance_after found as its
    source says (BOUND, BY_OWNER, UPDATED_HERE: the `wallet` CTE's RETURNING). A pipelined
    posting names wallets by owner because it sends this before the wallet ids are known;
    an earlier statement's update is visible to a later one of the same transaction, but
    not to a subquery of the statement making it, hence the CTE for the last wallet."""

    def owned(column: Any, leg: int) -> Any:
        return (
            select(column)
            .where(_accounts.c.user_id == bindparam(f"owner_{leg}"), _accounts.c.kind == "user")
            .scalar_subquery()
        )

    def located(leg: int, source: str) -> dict[str, Any]:
        if source == BOUND:
            return {column: bindparam(f"{column}_{leg}", type_=_entries.c[column].type) for column in _LOCATION}
        balance = owned(_accounts.c.balance, leg) if source == BY_OWNER else select(wallet.c.balance).scalar_subquery()
        return {"account_id": owned(_accounts.c.id, leg), "balance_after": balance}

    rows = [
        {
            **{column: bindparam(f"{column}_{leg}", type_=_entries.c[column].type) for column in _ENTRY_COLUMNS},
            **located(leg, source),
        }
        for leg, source in enumerate(sources)
    ]
    return insert(_entries).values(rows)


@lru_cache(maxsize=64)
def _posting_statement(is_debit: bool, active: bool, sources: tuple[str, ...], with_record: bool) -> Precompiled:
    """PostgreSQL: one wallet's guarded update, the transaction, its entries and (with_record)
    the idempotency record, as one statement of data-modifying CTEs; returns the wallet's
    row, or nothing if the update was refused. Parameters: the wallet update's, the
    entries', and the transaction's and the record's columns prefixed tx_ and key_."""

    def values(table: Table, prefix: str) -> dict:
        return {c.key: bindparam(f"{prefix}{c.key}", type_=c.type) for c in table.c}

    wallet = _UPDATES[(is_debit, active)].cte("wallet")
    parts = [
        insert(_transactions).values(values(_transactions, "tx_")).cte("new_transaction"),
        _entries_statement(sources, wallet).cte("new_entries"),
    ]
    if with_record:
        parts.append(insert(_records).values(values(_records, "key_")).cte("new_record"))
    return Precompiled(select(wallet.c.id, wallet.c.balance, wallet.c.version).add_cte(*parts))


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
    """The entries' parameters but their accounts (`account_id_<n>` or `owner_<n>`)."""
    params: dict[str, object] = {}
    for n, leg in enumerate(posting.legs):
        params[f"transaction_id_{n}"] = posting.id
        params[f"amount_{n}"] = leg.amount
        params[f"tx_type_{n}"] = posting.type
        params[f"created_at_{n}"] = posting.created_at
    return params


class StepByStepWriter:
    """One statement at a time; a refused update is diagnosed before anything else is sent."""

    def write(self, uow: UnitOfWork, posting: PostingRows, record: dict | None = None) -> list[WalletState]:
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
        _insert_entries((BOUND,) * len(posting.legs)).execute(session, entries)
        if record is not None:
            try:
                INSERT_RECORD.execute(session, record)
            except IntegrityError:
                raise KeyTaken() from None
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


class PipelinedWriter:
    """PostgreSQL: the whole posting, with its idempotency record, in one round trip.

    BEGIN, the first wallets' guarded updates, then one statement of data-modifying CTEs
    holding the last wallet's update (one row lock per statement: still taken in user
    order), the transaction, its entries (finding their wallets by owner) and the record,
    all sent in psycopg pipeline mode; COMMIT is the second round trip.

    Preconditions, checked: a PostgreSQL connection (else TypeError: a wiring mistake) and
    at least one wallet leg (else NotAsSent, before anything is sent). Whether it went
    through is only known afterwards: a refused update, a missing wallet, a value the
    database refuses or a key already taken raises NotAsSent, and the unit must be rolled
    back and redone step by step. The record must be a first claim of its key (a plain
    insert: taking over an expired key is an UPDATE, which the ledger makes itself).
    """

    def write(self, uow: UnitOfWork, posting: PostingRows, record: dict | None = None) -> list[WalletState]:
        session = uow.session
        self._require_preconditions(session, posting)
        *firsts, last = posting.wallet_legs
        now = posting.created_at
        sources = tuple(_source(leg, last) for leg in posting.legs)
        statement = _posting_statement(last.amount < 0, last.active, sources, record is not None)
        params = _posting_params(posting, last, record)
        try:
            with batch(session):
                sent = [
                    (leg, _WALLET_UPDATE[(leg.amount < 0, leg.active)].submit(session, _update_params(leg, now)))
                    for leg in firsts
                ]
                sent.append((last, statement.submit(session, params)))
            updated = [(leg, pending.rows()) for leg, pending in sent]
        except (IntegrityError, DataError):
            # An entry without a wallet, an id longer than any stored (an unknown user),
            # a key already taken, or a race: only the step-by-step run can tell which.
            raise NotAsSent() from None
        if not all(rows for _, rows in updated):
            raise NotAsSent()
        return [WalletState(cast(str, leg.user_id), balance, version) for leg, ((_, balance, version),) in updated]

    @staticmethod
    def _require_preconditions(session: Session, posting: PostingRows) -> None:
        if session.bind is None or session.bind.dialect.name != "postgresql":
            raise TypeError("PipelinedWriter needs PostgreSQL; other databases take StepByStepWriter")
        if not posting.wallet_legs:
            raise NotAsSent()  # nothing to pipeline the inserts with: step by step it goes


def _source(leg: PostingLeg, last: PostingLeg) -> str:
    """Where a pipelined posting's entry finds its account and balance_after."""
    if not leg.user_id:
        return BOUND
    return UPDATED_HERE if leg.user_id == last.user_id else BY_OWNER


def _posting_params(posting: PostingRows, last: PostingLeg, record: dict | None) -> dict:
    """The parameters of `_posting_statement`: last's update, the entries (wallets by owner),
    the transaction's row prefixed tx_ and the record's prefixed key_."""
    params = {**_update_params(last, posting.created_at), **_entry_params(posting)}
    for n, leg in enumerate(posting.legs):
        if leg.user_id:
            params[f"owner_{n}"] = leg.user_id
        else:
            params[f"account_id_{n}"] = leg.account_id
            params[f"balance_after_{n}"] = None  # a system account keeps no balance
    params.update({f"tx_{name}": value for name, value in _transaction_row(posting).items()})
    params.update({f"key_{name}": value for name, value in (record or {}).items()})
    return params


def writer_for(database_url: str) -> str:
    """Which writer a database takes: "pipelined" on PostgreSQL, "step_by_step" elsewhere."""
    return "pipelined" if make_url(database_url).get_backend_name() == "postgresql" else "step_by_step"


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
