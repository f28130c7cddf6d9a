"""Transaction use cases: transfer, read, history, reversal."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from app.infrastructure.database import Database
from app.infrastructure.posting import reversed_by
from app.infrastructure.tables import Account, LedgerEntry, Transaction
from app.services.errors import AlreadyReversed, Forbidden, NotFound, ValidationFailed
from app.services.idempotency import IdempotencyRequest, Outcome
from app.services.ledger import Ledger, Leg, Posting, TransactionView
from app.services.pagination import cursor_id, decode_cursor, encode_cursor
from app.services.principal import Principal, require_owner_or_admin
from app.vocabulary import TransactionType


@dataclass(frozen=True)
class HistoryPage:
    items: list[TransactionView]
    next_cursor: str | None


class TransactionService:
    def __init__(self, database: Database, ledger: Ledger) -> None:
        self._db = database
        self._ledger = ledger

    def transfer(
        self,
        actor: Principal,
        from_user_id: str,
        to_user_id: str,
        amount: int,
        description: str | None,
        idempotency: IdempotencyRequest | None = None,
    ) -> Outcome:
        require_owner_or_admin(actor, from_user_id, "you may only transfer from your own wallet")
        if from_user_id == to_user_id:
            raise ValidationFailed.field("to_user_id", "must differ from from_user_id")
        legs = (
            Leg(-amount, user_id=from_user_id, field="from_user_id"),
            Leg(amount, user_id=to_user_id, field="to_user_id", active=True),
        )

        def posting(uow) -> Posting:
            return Posting(
                type=TransactionType.TRANSFER,
                legs=legs,
                created_by=actor.user_id,
                from_user_id=from_user_id,
                to_user_id=to_user_id,
                description=description,
            )

        return self._ledger.execute(posting, idempotency)

    def reverse(
        self,
        actor: Principal,
        transaction_id: str,
        reason: str | None,
        idempotency: IdempotencyRequest | None = None,
    ) -> Outcome:
        """Post the mirror image of a transaction, once; the original is never edited."""
        if not actor.is_admin:
            raise Forbidden("only an admin may reverse a transaction")

        def reversal(uow) -> Posting:
            # Locking the original serializes concurrent reversals of it (SQLite: writers already are).
            original = uow.session.scalar(select(Transaction).where(Transaction.id == transaction_id).with_for_update())
            if original is None:
                raise NotFound("no such transaction")
            if original.type == TransactionType.REVERSAL:
                raise ValidationFailed.field("transaction_id", "a reversal cannot itself be reversed")
            if reversed_by(uow.session, [original.id]):
                raise AlreadyReversed()
            entries = uow.session.execute(
                select(LedgerEntry.amount, LedgerEntry.account_id, Account.user_id)
                .join(Account, Account.id == LedgerEntry.account_id)
                .where(LedgerEntry.transaction_id == original.id)
            ).all()
            legs = tuple(
                Leg(-amount, user_id=user_id) if user_id else Leg(-amount, account_id=account_id)
                for amount, account_id, user_id in entries
            )
            return Posting(
                type=TransactionType.REVERSAL,
                legs=legs,
                created_by=actor.user_id,
                from_user_id=original.to_user_id,
                to_user_id=original.from_user_id,
                description=reason,
                reverses=original.id,
            )

        return self._ledger.execute(reversal, idempotency)

    def get(self, actor: Principal, transaction_id: str) -> TransactionView:
        with self._db.unit_of_work(write=False) as uow:
            row = uow.session.get(Transaction, transaction_id)
            # Someone else's transaction is answered exactly like a missing one.
            if row is None or not actor.may_act_for(row.from_user_id, row.to_user_id, read=True):
                raise NotFound("no such transaction")
            return TransactionView.of(row, reversed_by(uow.session, [row.id]).get(row.id))

    def history(
        self, actor: Principal, user_id: str | None, type: str | None, limit: int, cursor: str | None
    ) -> HistoryPage:
        """Transactions touching a wallet, newest first, on the (account, entry id) index, in one query."""
        user_id = user_id or actor.user_id
        require_owner_or_admin(actor, user_id, "only an admin may read another user's history", read=True)
        after = decode_cursor(cursor, 1)
        after_id = cursor_id(after[0]) if after is not None else None
        with self._db.unit_of_work(write=False) as uow:
            account_id = uow.session.scalar(_ACCOUNT_OF_USER, {"user_id": user_id})
            if account_id is None:
                self._ledger.require_user(uow, user_id, "user_id", active=False)
                return HistoryPage([], None)
            params = {
                "account_id": account_id,
                "limit": limit + 1,
                "tx_type": type,
                "after": after_id,
            }
            rows = uow.session.execute(_HISTORY_PAGE[(bool(type), after_id is not None)], params).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [TransactionView(*row[1:]) for row in rows]
        return HistoryPage(items, encode_cursor(rows[-1][0]) if more and rows else None)


_accounts, _entries, _transactions = Account.__table__, LedgerEntry.__table__, Transaction.__table__
_reversal = _transactions.alias("reversal")
_ACCOUNT_OF_USER = select(_accounts.c.id).where(_accounts.c.user_id == bindparam("user_id"))


def _pinned(column, name: str) -> tuple:
    """`column = :name`, written as `column >= :name AND column <= :name`.

    With an equality, PostgreSQL treats the column as a constant and drops it from the
    ORDER BY, which the primary key (entry id) then satisfies on its own; for an account
    holding most of the entries it estimates a backward scan of the primary key, filtering
    out every newer entry of every other account, as cheapest (measured: 69 ms for a page
    behind 150,000 newer entries, growing with them). Pinned by a range, the column stays
    in the ordering and only the (account_id, [tx_type,] id) index can serve the page.
    """
    return column >= bindparam(name), column <= bindparam(name)


def _history_page(by_type: bool, after_cursor: bool):
    """One page of a wallet's history, newest first, each transaction with its reversal's id.

    Ordering by the whole index key (account_id is fixed by the filter) lets the planner
    read the page straight off the (account, [type,] id) index at any size.
    """
    t = _transactions
    query = (
        select(
            _entries.c.id,
            t.c.id,
            t.c.type,
            t.c.amount,
            t.c.from_user_id,
            t.c.to_user_id,
            t.c.description,
            t.c.created_at,
            t.c.reverses,
            _reversal.c.id,
        )
        .select_from(
            _entries.join(t, t.c.id == _entries.c.transaction_id).outerjoin(_reversal, _reversal.c.reverses == t.c.id)
        )
        .where(*_pinned(_entries.c.account_id, "account_id"))
        .limit(bindparam("limit"))
    )
    if by_type:
        query = query.where(*_pinned(_entries.c.tx_type, "tx_type")).order_by(
            _entries.c.account_id.desc(), _entries.c.tx_type.desc(), _entries.c.id.desc()
        )
    else:
        query = query.order_by(_entries.c.account_id.desc(), _entries.c.id.desc())
    if after_cursor:
        query = query.where(_entries.c.id < bindparam("after"))
    return query


# Built once per shape: a history page is a hot read.
_HISTORY_PAGE = {
    (by_type, after): _history_page(by_type, after) for by_type in (False, True) for after in (False, True)
}
