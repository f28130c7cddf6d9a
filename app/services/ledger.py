"""The double-entry ledger's language (legs, postings) and the one place a money movement
runs; its SQL is in app/infrastructure/posting.py. docs/ledger.md has the map."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Protocol

from sqlalchemy.exc import IntegrityError

from app.infrastructure import posting as sql
from app.infrastructure.database import Database, UnitOfWork
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.tables import Transaction, utcnow
from app.services import errors
from app.services.balance_cache import Balance, BalanceCache
from app.services.idempotency import IdempotencyRequest, IdempotencyStore, Outcome, OutcomeKind
from app.vocabulary import EventType, TransactionType

# Refusals that are business outcomes: stored under an idempotency key and replayed as-is.
STORED_REFUSALS = (errors.InsufficientFunds, errors.AlreadyReversed)


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
    def of(cls, row: Transaction | Posting, reversed_by: str | None = None) -> TransactionView:
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
    """One side of a posting: a user's wallet (user_id) or a system account (account_id); a
    wallet leg names the request field of its user (for a 404/422) and if it must be active."""

    amount: int
    user_id: str | None = None
    account_id: str | None = None
    field: str = "user_id"
    active: bool = False


@dataclass(frozen=True, kw_only=True)
class Posting:
    """One balanced money movement: a transaction and its legs, refused when built unbalanced."""

    type: TransactionType
    legs: tuple[Leg, ...]
    created_by: str | None  # the acting user; None for the system (an inbound payment's deposit)
    from_user_id: str | None = None
    to_user_id: str | None = None
    description: str | None = None
    reverses: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=utcnow)
    amount: int = field(init=False)  # what the credited side receives
    wallet_legs: tuple[Leg, ...] = field(init=False)

    def __post_init__(self) -> None:
        amounts = [leg.amount for leg in self.legs]
        if not amounts or 0 in amounts:
            raise ValueError("a posting needs legs, and none of them may be zero")
        if sum(amounts) != 0:
            raise ValueError("a posting's legs must sum to zero")
        object.__setattr__(self, "amount", sum(amount for amount in amounts if amount > 0))
        # Wallet rows are locked in user-id order, so A->B and B->A postings cannot deadlock.
        wallets = sorted((leg for leg in self.legs if leg.user_id), key=attrgetter("user_id"))
        object.__setattr__(self, "wallet_legs", tuple(wallets))


Prepare = Callable[[UnitOfWork], Posting]  # a use case's: the one posting to write, given the unit


class Renderer(Protocol):
    """An outcome's body (the HTTP edge's wire format; stored verbatim for replays)."""

    def success(self, view: TransactionView) -> dict: ...
    def failure(self, error: errors.DomainError) -> dict: ...


class Ledger:
    """Runs money movements: each one posting, in one unit of work, idempotent under a key;
    `writer` goes first, `step_by_step` redoes what it reports as not written as sent."""

    def __init__(
        self,
        database: Database,
        idempotency: IdempotencyStore,
        balances: BalanceCache,
        renderer: Renderer,
        writer: sql.PostingWriter,
        step_by_step: sql.PostingWriter,
    ) -> None:
        self._db, self._idempotency, self._balances = database, idempotency, balances
        self._renderer, self._writer, self._step_by_step = renderer, writer, step_by_step

    def execute(self, prepare: Prepare, key: IdempotencyRequest | None = None) -> Outcome:
        """Write the one posting prepare(uow) returns (it may read, lock and refuse first).

        The key is not looked up first: its record goes in with the posting under a unique
        index, so a taken key fails that insert and rolls the unit back; only then is the
        stored outcome read and replayed, or an expired one taken over, once. A posting the
        writer reports not written as sent is redone step by step (prepare is called again).
        """
        if key is None:
            return self._run(prepare, None, take_over=False)
        take_over = False
        while True:
            try:
                return self._run(prepare, key, take_over)
            except sql.KeyTaken:
                stored, expired = self._stored(key)
                if stored is not None:
                    return stored
                if not expired or take_over:
                    # Held by a record that vanished (purged) or was just taken over
                    # by another request: refuse rather than loop.
                    raise errors.IdempotencyConflict() from None
                take_over = True  # past its lifetime: the key is free again
            except errors.DomainError:
                # A retry of a request that went through answers as it did, even where
                # the same request would be refused now (say, its payee deactivated since).
                stored = self._stored(key)[0]
                if stored is None:
                    raise
                return stored

    def _run(self, prepare: Prepare, key: IdempotencyRequest | None, take_over: bool) -> Outcome:
        try:
            return self._attempt(prepare, key, take_over, self._writer)
        except sql.NotAsSent:
            return self._attempt(prepare, key, take_over, self._step_by_step)

    def _attempt(
        self, prepare: Prepare, key: IdempotencyRequest | None, take_over: bool, writer: sql.PostingWriter
    ) -> Outcome:
        with self._db.unit_of_work() as uow:
            try:
                posting = prepare(uow)
                outcome = Outcome(OutcomeKind.CREATED, self._renderer.success(TransactionView.of(posting)))
                # A first claim of the key rides with the posting; a take-over is saved below.
                record = self._idempotency.record(key, outcome) if key and not take_over else None
                # Final unless a take-over's record is still to be saved below.
                self._write(uow, writer, posting, record, outcome.body, final=key is None or record is not None)
            except STORED_REFUSALS as refusal:
                if key is None:
                    raise
                uow.rollback()
                outcome, record = Outcome(OutcomeKind.REFUSED, self._renderer.failure(refusal)), None
            try:
                if key is not None and record is None:
                    self._idempotency.save(uow.session, key, outcome, take_over)
                uow.commit()
            except IntegrityError:
                if key is None:
                    raise
                raise sql.KeyTaken() from None
        return outcome

    def _write(
        self,
        uow: UnitOfWork,
        writer: sql.PostingWriter,
        posting: Posting,
        record: dict | None,
        rendered: dict,
        final: bool,
    ) -> None:
        """Write the posting and its `transaction.posted` (the Transaction as rendered; the
        writer adds each wallet's balance after) to go out with the commit."""
        event = DomainEvent(
            EventType.TRANSACTION_POSTED,
            posting.id,
            {"transaction": rendered},
            target_type="transaction",
            actor_id=posting.created_by,
        )
        try:
            states = writer.write(uow, posting, record, event, final)
        except sql.Refused as refused:
            raise _domain_error(refused) from None
        balances = [Balance(state.user_id, state.balance, posting.created_at, state.version) for state in states]
        uow.after_commit(lambda: self._balances.store_many(balances))

    def _stored(self, key: IdempotencyRequest) -> tuple[Outcome | None, bool]:
        """The outcome stored under the key, and whether an expired record holds it."""
        with self._db.unit_of_work(write=False) as uow:
            return self._idempotency.find(uow.session, key)

    @staticmethod
    def require_user(uow: UnitOfWork, user_id: str, field: str, active: bool = True) -> None:
        """404 if the user is unknown; 422 on `field` if inactive and it must be active."""
        try:
            sql.check_users(uow.session, [(user_id, field, active)])
        except sql.Refused as refused:
            raise _domain_error(refused) from None


def _domain_error(refused: sql.Refused) -> errors.DomainError:
    """Why the database refused a posting, in the domain's words."""
    if isinstance(refused, sql.Overdrawn):
        return errors.InsufficientFunds(balance=refused.balance, requested=refused.requested)
    if isinstance(refused, sql.InactiveUser):
        return errors.ValidationFailed.field(refused.field, "the user is not active")
    return errors.NotFound("no such user")
