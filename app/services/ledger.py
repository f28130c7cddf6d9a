"""The double-entry posting engine shared by wallets and transactions.

A posting updates the stored balances of the wallets it touches (in user-id order, so
concurrent postings never deadlock), then writes the transaction and its legs, which sum
to zero; deposits are drawn from the issuance account and withdrawals paid into the
redemption account. One unit of work, committed once, with the idempotency record.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from sqlalchemy import bindparam, exists, insert, select, true, update
from sqlalchemy.exc import DataError, IntegrityError

from app.infrastructure.database import Database, UnitOfWork
from app.infrastructure.statements import Precompiled, batch
from app.infrastructure.tables import Account, LedgerEntry, Transaction, User, utcnow
from app.services.balance_cache import Balance, BalanceCache
from app.services.errors import (
    AlreadyReversed,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    ValidationFailed,
)
from app.services.idempotency import RECORDS, IdempotencyRequest, IdempotencyStore, Outcome

# Refusals that are business outcomes: stored under an idempotency key and replayed as-is.
STORED_REFUSALS = (InsufficientFunds, AlreadyReversed)


@dataclass(frozen=True)
class TransactionView:
    id: str
    type: str
    amount: int
    from_user_id: str | None
    to_user_id: str | None
    description: str | None
    created_at: datetime
    reverses: str | None = None
    reversed_by: str | None = None

    @classmethod
    def of(cls, row: Transaction, reversed_by: str | None = None) -> TransactionView:
        return cls(
            row.id,
            row.type,
            row.amount,
            row.from_user_id,
            row.to_user_id,
            row.description,
            row.created_at,
            row.reverses,
            reversed_by,
        )


@dataclass(frozen=True)
class Leg:
    """One side of a posting: a user's wallet (user_id) or a system account (account_id).

    A wallet leg names the request field its user came from (for a 404/422 about it) and
    whether that user must be active for the posting to go ahead.
    """

    amount: int
    user_id: str | None = None
    account_id: str | None = None
    field: str = "user_id"
    active: bool = False


# The hot path's statements, built once (constructing and cache-keying a statement costs
# several times what executing it does) and run as Precompiled: see that module for why.
_accounts, _transactions, _entries = Account.__table__, Transaction.__table__, LedgerEntry.__table__
_users = User.__table__
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
_WALLET_UPDATE = {
    (False, False): Precompiled(_CREDIT),
    (True, False): Precompiled(_DEBIT),
    (False, True): Precompiled(_CREDIT.where(_OWNER_ACTIVE)),
    (True, True): Precompiled(_DEBIT.where(_OWNER_ACTIVE)),
}
_INSERT_TRANSACTION = Precompiled(insert(_transactions), column_keys=[c.key for c in _transactions.c])
_ENTRY_COLUMNS = ("transaction_id", "amount", "tx_type", "created_at")


@lru_cache(maxsize=32)
def _insert_entries(by_owner: tuple[bool, ...]) -> Precompiled:
    """One INSERT of all of a posting's legs. A leg marked by_owner names its wallet by user
    (`owner_<n>`), for a pipelined posting that sends this before the wallet ids are known."""

    def account(leg: int, owner: bool):
        if not owner:
            return bindparam(f"account_id_{leg}", type_=_entries.c.account_id.type)
        return (
            select(_accounts.c.id)
            .where(_accounts.c.user_id == bindparam(f"owner_{leg}"), _accounts.c.kind == "user")
            .scalar_subquery()
        )

    return Precompiled(
        insert(_entries).values(
            [
                {
                    **{
                        column: bindparam(f"{column}_{leg}", type_=_entries.c[column].type) for column in _ENTRY_COLUMNS
                    },
                    "account_id": account(leg, owner),
                }
                for leg, owner in enumerate(by_owner)
            ]
        )
    )


@lru_cache(maxsize=64)
def _posting_statement(is_debit: bool, active: bool, by_owner: tuple[bool, ...], with_record: bool) -> Precompiled:
    """PostgreSQL: one wallet's guarded update, the transaction, its entries and (with_record)
    the idempotency record, as one statement of data-modifying CTEs; returns the wallet's
    row, or nothing if the update was refused. Parameters: the wallet update's, the
    entries', and the transaction's and the record's columns prefixed tx_ and key_."""

    def values(table, prefix: str) -> dict:
        return {c.key: bindparam(f"{prefix}{c.key}", type_=c.type) for c in table.c}

    wallet = _WALLET_UPDATE[(is_debit, active)].statement.cte("wallet")
    parts = [
        insert(_transactions).values(values(_transactions, "tx_")).cte("new_transaction"),
        _insert_entries(by_owner).statement.cte("new_entries"),
    ]
    if with_record:
        parts.append(insert(RECORDS).values(values(RECORDS, "key_")).cte("new_record"))
    return Precompiled(select(wallet.c.id, wallet.c.balance, wallet.c.version).add_cte(*parts))


_USERS_ACTIVE = select(_users.c.id, _users.c.is_active).where(_users.c.id.in_(bindparam("ids", expanding=True)))
_WALLET = select(Account).where(Account.user_id == bindparam("user_id"))
_REVERSED_BY = select(_transactions.c.reverses, _transactions.c.id).where(
    _transactions.c.reverses.in_(bindparam("ids", expanding=True))
)


class _KeyTaken(Exception):
    """The idempotency key was already recorded when this unit tried to record it."""


class _NotInOneGo(Exception):
    """A pipelined posting did not go through as sent; the unit is run again step by step."""


# Set on a unit's session when its operation must post step by step (see Ledger.post).
_STEP_BY_STEP = "ledger.step_by_step"
# Set on a unit's session to have a posting sent in one go carry its idempotency record
# along: a callable given the posting's view, which returns the record.
_ALONG_WITH_POSTING = "ledger.along_with_posting"


class Renderer(Protocol):
    def success(self, view: TransactionView) -> dict: ...
    def failure(self, error: DomainError) -> dict: ...


class Ledger:
    def __init__(self, database: Database, idempotency: IdempotencyStore, balances: BalanceCache) -> None:
        self._db = database
        self._idempotency = idempotency
        self._balances = balances

    # -- running a money movement --------------------------------------------------------
    def execute(
        self,
        operation: Callable[[UnitOfWork], TransactionView],
        render: Renderer,
        idempotency: IdempotencyRequest | None = None,
    ) -> Outcome:
        """Run operation in one unit of work; with a key, store its outcome there too, or replay.

        A key is not looked up first: its record is inserted with the effect, under a unique
        key, so a key already taken makes that insert fail and the whole unit roll back. Only
        a replay (or a race for the key) pays for the lookup; a first request saves a query.
        """
        if idempotency is None:
            return self._run(operation, render, None, take_over=False)
        take_over = False
        while True:
            try:
                return self._run(operation, render, idempotency, take_over)
            except _KeyTaken:
                stored, expired = self._stored(idempotency)
                if stored is not None:
                    return stored
                if not expired or take_over:
                    # Held by a record that vanished (purged) or was just taken over
                    # by another request: refuse rather than loop.
                    raise IdempotencyConflict() from None
                take_over = True  # past its lifetime: the key is free again

    def _run(self, operation, render: Renderer, idempotency: IdempotencyRequest | None, take_over: bool) -> Outcome:
        try:
            return self._attempt(operation, render, idempotency, take_over, step_by_step=False)
        except _NotInOneGo:
            return self._attempt(operation, render, idempotency, take_over, step_by_step=True)

    def _attempt(
        self, operation, render: Renderer, idempotency: IdempotencyRequest | None, take_over: bool, step_by_step: bool
    ) -> Outcome:
        with self._db.unit_of_work() as uow:
            uow.session.info[_STEP_BY_STEP] = step_by_step
            # The key's record is known as soon as the posting's view is (a first attempt
            # succeeds or is redone), so it goes out in the posting's round trip.
            recorded: list[tuple[TransactionView, Outcome]] = []
            if idempotency and not take_over and not step_by_step:

                def record(view: TransactionView) -> dict:
                    recorded.append((view, Outcome(201, render.success(view))))
                    return self._idempotency.record(idempotency, recorded[0][1])

                uow.session.info[_ALONG_WITH_POSTING] = record
            try:
                view = operation(uow)
                if recorded and recorded[0][0] is not view:  # the operation answered something else
                    raise _NotInOneGo()
                outcome = recorded[0][1] if recorded else Outcome(201, render.success(view))
            except STORED_REFUSALS as refusal:
                if idempotency is None:
                    raise
                uow.rollback()
                outcome = Outcome(409, render.failure(refusal))
            except DomainError:
                # A retry of a request that went through answers as it did, even where
                # the same request would be refused now (say, its payee deactivated since).
                uow.rollback()
                stored = self._stored(idempotency)[0] if idempotency else None
                if stored is None:
                    raise
                return stored
            try:
                if idempotency and not recorded:
                    self._idempotency.save(uow.session, idempotency, outcome, take_over)
                uow.commit()
            except IntegrityError:
                if idempotency is None:
                    raise
                uow.rollback()
                raise _KeyTaken() from None
        return outcome

    def _stored(self, idempotency: IdempotencyRequest) -> tuple[Outcome | None, bool]:
        """The outcome stored under the key, and whether an expired record holds it."""
        with self._db.unit_of_work(write=False) as uow:
            return self._idempotency.find(uow.session, idempotency)

    # -- primitives used inside an operation ----------------------------------------------
    # Core statements, not the ORM unit of work: this is the hot path, and every row it
    # writes is new and never read back through the session.
    def post(
        self,
        uow: UnitOfWork,
        *,
        type: str,
        legs: list[Leg],
        from_user_id: str | None,
        to_user_id: str | None,
        description: str | None,
        created_by: str,
        reverses: str | None = None,
    ) -> TransactionView:
        if sum(leg.amount for leg in legs) != 0 or any(leg.amount == 0 for leg in legs):
            raise ValueError("a posting's legs must be non-zero and sum to zero")
        amount = sum(leg.amount for leg in legs if leg.amount > 0)
        session, now = uow.session, utcnow()
        view = TransactionView(str(uuid.uuid4()), type, amount, from_user_id, to_user_id, description, now, reverses)
        transaction = {
            "id": view.id,
            "type": type,
            "amount": amount,
            "from_user_id": from_user_id,
            "to_user_id": to_user_id,
            "description": description,
            "reverses": reverses,
            "created_by": created_by,
            "created_at": now,
        }
        entries: dict[str, object] = {}
        for n, leg in enumerate(legs):
            entries.update(
                {
                    f"transaction_id_{n}": view.id,
                    f"amount_{n}": leg.amount,
                    f"tx_type_{n}": type,
                    f"created_at_{n}": now,
                }
            )
        # Fixed order on the wallet rows: concurrent transfers A->B and B->A cannot deadlock.
        wallet_legs = sorted((leg for leg in legs if leg.user_id), key=lambda leg: leg.user_id)
        if session.info.get(_STEP_BY_STEP, True):
            balances = self._post_step_by_step(uow, legs, wallet_legs, now, transaction, entries)
        else:
            balances = self._post_in_one_go(uow, view, legs, wallet_legs, now, transaction, entries)
        uow.after_commit(lambda: self._balances.store_many(balances))
        return view

    def _post_in_one_go(
        self,
        uow: UnitOfWork,
        view: TransactionView,
        legs: list[Leg],
        wallet_legs: list[Leg],
        now: datetime,
        transaction: dict,
        entries: dict,
    ) -> list[Balance]:
        """The whole posting, with the unit's idempotency record if it has one, in one
        round trip (PostgreSQL: pipeline mode) and on PostgreSQL in two statements.

        The wallet updates still come first and in user order, each guarded as in `_apply`,
        and the entries find their wallets by owner. Whether it all went through is only
        known afterwards: a refused update, a missing wallet or a key already taken raises
        _NotInOneGo, the unit rolls back, and the step-by-step posting finds out why and
        answers for it.
        """
        session = uow.session
        by_owner = tuple(bool(leg.user_id) for leg in legs)
        for n, leg in enumerate(legs):
            if leg.user_id:
                entries[f"owner_{n}"] = leg.user_id
            else:
                entries[f"account_id_{n}"] = leg.account_id
        along = session.info.pop(_ALONG_WITH_POSTING, None)
        record = along(view) if along is not None else None

        def update(leg: Leg):
            return leg, _WALLET_UPDATE[(leg.amount < 0, leg.active)].submit(session, _update_params(leg, now))

        try:
            with batch(session):
                if session.bind.dialect.name == "postgresql" and wallet_legs:
                    # The last wallet's update rides in the statement with the inserts:
                    # one row lock per statement, so they are still taken in user order.
                    *firsts, last = wallet_legs
                    updates = [update(leg) for leg in firsts]
                    params = {
                        **_update_params(last, now),
                        **entries,
                        **{f"tx_{name}": value for name, value in transaction.items()},
                        **{f"key_{name}": value for name, value in (record or {}).items()},
                    }
                    statement = _posting_statement(last.amount < 0, last.active, by_owner, record is not None)
                    updates.append((last, statement.submit(session, params)))
                else:
                    updates = [update(leg) for leg in wallet_legs]
                    _INSERT_TRANSACTION.submit(session, transaction)
                    _insert_entries(by_owner).submit(session, entries)
                    if record is not None:
                        self._idempotency.submit(session, record)
            updated = [(leg, pending.rows()) for leg, pending in updates]
        except (IntegrityError, DataError):
            # An entry without a wallet, an id longer than any stored (an unknown user),
            # a key already taken, or a race: the step-by-step run, which checks before it
            # writes, finds out which and answers for it.
            raise _NotInOneGo() from None
        if not all(rows for _, rows in updated):
            raise _NotInOneGo()
        return [Balance(leg.user_id, balance, now, version) for leg, ((_, balance, version),) in updated]

    def _post_step_by_step(
        self, uow: UnitOfWork, legs: list[Leg], wallet_legs: list[Leg], now: datetime, transaction: dict, entries: dict
    ) -> list[Balance]:
        account_of: dict[str, str] = {}
        balances: list[Balance] = []
        for leg in wallet_legs:
            account_id, balance = self._apply(uow, leg, wallet_legs, now)
            account_of[leg.user_id] = account_id
            balances.append(balance)
        _INSERT_TRANSACTION.execute(uow.session, transaction)
        for n, leg in enumerate(legs):
            entries[f"account_id_{n}"] = account_of.get(leg.user_id, leg.account_id)
        _insert_entries((False,) * len(legs)).execute(uow.session, entries)
        return balances

    def _apply(self, uow: UnitOfWork, leg: Leg, wallet_legs: list[Leg], now: datetime) -> tuple[str, Balance]:
        """Move the leg's amount into (or out of) its wallet, guarded as the leg requires.

        The guards ride on the UPDATE itself, so the common case is one statement per
        wallet; only a refused update pays for finding out why.
        """
        params = _update_params(leg, now)
        statement = _WALLET_UPDATE[(leg.amount < 0, leg.active)]
        result = next(iter(statement.execute(uow.session, params)), None)
        if result is None:
            # Unknown or inactive users first, as if they had been checked up front.
            self.require_users(uow, *((other.user_id, other.field, other.active) for other in wallet_legs))
            current = self.ensure_wallet(uow, leg.user_id)
            if leg.amount < 0:
                raise InsufficientFunds(balance=current.balance, requested=-leg.amount)
            (result,) = statement.execute(uow.session, params)
        account_id, balance, version = result
        return account_id, Balance(leg.user_id, balance, now, version)

    @staticmethod
    def ensure_wallet(uow: UnitOfWork, user_id: str) -> Account:
        """The user's wallet, created at zero on first use if the user predates wallets."""
        account = uow.session.scalar(_WALLET, {"user_id": user_id})
        if account is None:
            account = Account(id=str(uuid.uuid4()), user_id=user_id, kind="user", balance=0, version=0)
            uow.session.add(account)
            uow.session.flush()
        return account

    @staticmethod
    def require_users(uow: UnitOfWork, *checks: tuple[str, str, bool]) -> None:
        """Each (user_id, field, must_be_active): 404 if unknown, 422 on `field` if inactive.

        One query for all of them.
        """
        ids = sorted({user_id for user_id, _, _ in checks})
        active = dict(uow.session.execute(_USERS_ACTIVE, {"ids": ids}).all())
        for user_id, field, must_be_active in checks:
            if user_id not in active:
                raise NotFound("no such user")
            if must_be_active and not active[user_id]:
                raise ValidationFailed.field(field, "the user is not active")

    def require_user(self, uow: UnitOfWork, user_id: str, field: str, active: bool = True) -> None:
        self.require_users(uow, (user_id, field, active))

    @staticmethod
    def reversed_by(uow: UnitOfWork, transaction_ids: list[str]) -> dict[str, str]:
        if not transaction_ids:
            return {}
        return dict(uow.session.execute(_REVERSED_BY, {"ids": transaction_ids}).all())


def _update_params(leg: Leg, now: datetime) -> dict:
    params = {"wallet_user_id": leg.user_id, "delta": leg.amount, "now": now}
    if leg.amount < 0:
        params["needed"] = -leg.amount
    return params
