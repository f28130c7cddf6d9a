"""Wallet use cases: balance, deposit (admin), withdrawal (owner or admin)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.infrastructure.database import Database
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.posting import balance_as_of, ensure_wallet
from app.infrastructure.tables import ISSUANCE_ACCOUNT, REDEMPTION_ACCOUNT, Account, utcnow
from app.services.balance_cache import Balance, BalanceCache
from app.services.errors import Forbidden, ValidationFailed
from app.services.idempotency import IdempotencyRequest, Outcome
from app.services.ledger import Ledger, Leg, Posting
from app.services.principal import Principal, require_owner_or_admin
from app.vocabulary import TransactionType

_OWN_WALLET_ONLY = "you may only act on your own wallet"


class WalletService:
    def __init__(self, database: Database, ledger: Ledger, balances: BalanceCache) -> None:
        self._db = database
        self._ledger = ledger
        self._balances = balances

    @staticmethod
    def create_wallet(session: Session, event: DomainEvent) -> None:
        """`user.created` handler: the wallet is born in the same transaction as its user."""
        if session.scalar(select(Account.id).where(Account.user_id == event.target_id)) is None:
            session.add(Account(id=str(uuid.uuid4()), user_id=event.target_id, kind="user", balance=0, version=0))

    def expect_balance_read(self, user_id: str) -> None:
        """Let the caller's token check carry this balance's cache read (one round trip for both)."""
        self._balances.read_ahead(user_id)

    def balance(self, actor: Principal, user_id: str) -> Balance:
        require_owner_or_admin(actor, user_id, _OWN_WALLET_ONLY, read=True)
        cached = self._balances.get(user_id)
        if cached is not None:
            return cached
        with self._db.unit_of_work(write=False) as uow:
            account = uow.session.scalar(select(Account).where(Account.user_id == user_id))
            if account is None:
                self._ledger.require_user(uow, user_id, "user_id", active=False)
        if account is None:  # a user from before wallets existed: its wallet starts now
            with self._db.unit_of_work() as uow:
                account = ensure_wallet(uow.session, user_id)
                uow.commit()
        balance = Balance(user_id, cast(int, account.balance), account.updated_at, account.version)
        self._balances.store(balance)
        return balance

    def balance_as_of(self, actor: Principal, user_id: str, moment: datetime) -> dict:
        """The wallet's balance at a past moment: its last entry's balance_after before then."""
        require_owner_or_admin(actor, user_id, _OWN_WALLET_ONLY, read=True)
        if moment > utcnow():
            raise ValidationFailed.field("as_of", "Must not lie in the future.")
        with self._db.unit_of_work(write=False) as uow:
            account_id = uow.session.scalar(select(Account.id).where(Account.user_id == user_id))
            if account_id is None:
                self._ledger.require_user(uow, user_id, "user_id", active=False)
                return {"user_id": user_id, "balance": 0, "as_of": moment}
            return {"user_id": user_id, "balance": balance_as_of(uow.session, account_id, moment), "as_of": moment}

    def deposit(
        self,
        actor: Principal,
        user_id: str,
        amount: int,
        description: str | None,
        idempotency: IdempotencyRequest | None = None,
    ) -> Outcome:
        if not actor.is_admin:
            raise Forbidden("only an admin may deposit")
        legs = (Leg(-amount, account_id=ISSUANCE_ACCOUNT), Leg(amount, user_id=user_id, active=True))

        def posting(uow) -> Posting:
            return Posting(
                type=TransactionType.DEPOSIT,
                legs=legs,
                created_by=actor.user_id,
                to_user_id=user_id,
                description=description,
            )

        return self._ledger.execute(posting, idempotency)

    def withdraw(
        self,
        actor: Principal,
        user_id: str,
        amount: int,
        description: str | None,
        idempotency: IdempotencyRequest | None = None,
    ) -> Outcome:
        require_owner_or_admin(actor, user_id, _OWN_WALLET_ONLY)
        legs = (Leg(-amount, user_id=user_id), Leg(amount, account_id=REDEMPTION_ACCOUNT))

        def posting(uow) -> Posting:
            return Posting(
                type=TransactionType.WITHDRAWAL,
                legs=legs,
                created_by=actor.user_id,
                from_user_id=user_id,
                description=description,
            )

        return self._ledger.execute(posting, idempotency)
