"""The double-entry posting engine shared by wallets and transactions.

A posting updates the stored balances of the wallets it touches (in user-id order, so
concurrent postings never deadlock), then writes the transaction and its legs, which sum
to zero; deposits are drawn from the issuance account and withdrawals paid into the
redemption account. One unit of work, committed once, with the idempotency record.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.infrastructure.database import Database, UnitOfWork
from app.infrastructure.tables import Account, LedgerEntry, Transaction, User, utcnow
from app.services.balance_cache import Balance, BalanceCache
from app.services.errors import (AlreadyReversed, DomainError, IdempotencyConflict, InsufficientFunds, NotFound,
                                 ValidationFailed)
from app.services.idempotency import IdempotencyRequest, IdempotencyStore, Outcome

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
        return cls(row.id, row.type, row.amount, row.from_user_id, row.to_user_id, row.description,
                   row.created_at, row.reverses, reversed_by)


@dataclass(frozen=True)
class Leg:
    """One side of a posting: a user's wallet (user_id) or a system account (account_id)."""

    amount: int
    user_id: str | None = None
    account_id: str | None = None


class Renderer(Protocol):
    def success(self, view: TransactionView) -> dict: ...
    def failure(self, error: DomainError) -> dict: ...


class Ledger:
    def __init__(self, database: Database, idempotency: IdempotencyStore, balances: BalanceCache) -> None:
        self._db = database
        self._idempotency = idempotency
        self._balances = balances

    # -- running a money movement --------------------------------------------------------
    def execute(self, operation: Callable[[UnitOfWork], TransactionView], render: Renderer,
                idempotency: IdempotencyRequest | None = None) -> Outcome:
        """Run operation in one unit of work; with a key, store (or replay) its outcome there too."""
        with self._db.unit_of_work() as uow:
            expired = False
            if idempotency:
                stored, expired = self._idempotency.find(uow.session, idempotency)
                if stored:
                    return stored
            try:
                outcome = Outcome(201, render.success(operation(uow)))
            except STORED_REFUSALS as refusal:
                if idempotency is None:
                    raise
                uow.rollback()
                outcome = Outcome(409, render.failure(refusal))
            try:
                if idempotency:
                    self._idempotency.save(uow.session, idempotency, outcome, expired)
                uow.commit()
            except IntegrityError:
                if idempotency is None:
                    raise
                uow.rollback()  # a concurrent request with this key won: answer as it did
        if uow.committed:
            return outcome
        return self._replay_after_race(idempotency)

    def _replay_after_race(self, idempotency: IdempotencyRequest) -> Outcome:
        with self._db.unit_of_work(write=False) as uow:
            stored, _expired = self._idempotency.find(uow.session, idempotency)
        if stored is None:
            raise IdempotencyConflict()
        return stored

    # -- primitives used inside an operation ----------------------------------------------
    # Core statements, not the ORM unit of work: this is the hot path, and every row it
    # writes is new and never read back through the session.
    def post(self, uow: UnitOfWork, *, type: str, legs: list[Leg], from_user_id: str | None,
             to_user_id: str | None, description: str | None, created_by: str,
             reverses: str | None = None) -> TransactionView:
        if sum(leg.amount for leg in legs) != 0 or any(leg.amount == 0 for leg in legs):
            raise ValueError("a posting's legs must be non-zero and sum to zero")
        amount = sum(leg.amount for leg in legs if leg.amount > 0)
        session, now = uow.session, utcnow()
        account_of: dict[str, str] = {}
        balances: list[Balance] = []
        # Fixed order on the wallet rows: concurrent transfers A->B and B->A cannot deadlock.
        for leg in sorted((leg for leg in legs if leg.user_id), key=lambda leg: leg.user_id):
            account_id, balance = self._apply(uow, leg.user_id, leg.amount, now)
            account_of[leg.user_id] = account_id
            balances.append(balance)
        view = TransactionView(str(uuid.uuid4()), type, amount, from_user_id, to_user_id, description, now,
                               reverses)
        session.execute(insert(Transaction.__table__).values(
            id=view.id, type=type, amount=amount, from_user_id=from_user_id, to_user_id=to_user_id,
            description=description, reverses=reverses, created_by=created_by, created_at=now))
        session.execute(insert(LedgerEntry.__table__), [
            {"transaction_id": view.id, "account_id": account_of.get(leg.user_id, leg.account_id),
             "amount": leg.amount, "tx_type": type, "created_at": now} for leg in legs])
        uow.after_commit(lambda: self._balances.store_many(balances))
        return view

    def _apply(self, uow: UnitOfWork, user_id: str, delta: int, now: datetime) -> tuple[str, Balance]:
        """Move delta into (or out of) a wallet; the debit only happens if it stays >= 0."""
        accounts = Account.__table__
        statement = (update(accounts)
                     .where(accounts.c.user_id == user_id, accounts.c.kind == "user")
                     .values(balance=accounts.c.balance + delta, version=accounts.c.version + 1, updated_at=now)
                     .returning(accounts.c.id, accounts.c.balance, accounts.c.version))
        if delta < 0:
            statement = statement.where(accounts.c.balance >= -delta)
        result = uow.session.execute(statement).first()
        if result is None:
            current = self.ensure_wallet(uow, user_id)
            if delta < 0:
                raise InsufficientFunds(balance=current.balance, requested=-delta)
            result = uow.session.execute(statement).one()
        account_id, balance, version = result
        return account_id, Balance(user_id, balance, now, version)

    @staticmethod
    def ensure_wallet(uow: UnitOfWork, user_id: str) -> Account:
        """The user's wallet, created at zero on first use if the user predates wallets."""
        account = uow.session.scalar(select(Account).where(Account.user_id == user_id))
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
        ids = {user_id for user_id, _, _ in checks}
        active = dict(uow.session.execute(select(User.id, User.is_active).where(User.id.in_(ids))).all())
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
        rows = uow.session.execute(select(Transaction.reverses, Transaction.id)
                                   .where(Transaction.reverses.in_(transaction_ids)))
        return dict(rows.all())


def with_reversal(view: TransactionView, reversal_id: str | None) -> TransactionView:
    return replace(view, reversed_by=reversal_id)
