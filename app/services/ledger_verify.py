"""The ledger's invariants, checked against the database itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, or_, select

from app.infrastructure.database import Database
from app.infrastructure.tables import Account, LedgerEntry, Transaction


@dataclass
class VerifyReport:
    transactions: int = 0
    wallets: int = 0
    total_balance: int = 0
    issued: int = 0
    redeemed: int = 0
    unbalanced_transactions: list[str] = field(default_factory=list)
    transactions_without_entries: list[str] = field(default_factory=list)
    wrong_balances: list[dict] = field(default_factory=list)
    negative_balances: list[str] = field(default_factory=list)
    wrong_balances_after: list[dict] = field(default_factory=list)  # the first few entries only

    @property
    def ok(self) -> bool:
        return not (
            self.unbalanced_transactions
            or self.transactions_without_entries
            or self.wrong_balances
            or self.negative_balances
            or self.wrong_balances_after
            or self.total_balance != self.issued - self.redeemed
        )


# Entries of wallets whose balance_after is not the running sum of their wallet's entries in
# id order (the order the writers applied them); one window over the table.
_RUNNING = (
    select(
        LedgerEntry.id,
        LedgerEntry.account_id,
        LedgerEntry.balance_after,
        func.sum(LedgerEntry.amount).over(partition_by=LedgerEntry.account_id, order_by=LedgerEntry.id).label("sum"),
    )
    .join(Account, Account.id == LedgerEntry.account_id)
    .where(Account.kind == "user")
    .subquery()
)
_WRONG_BALANCES_AFTER = (
    select(_RUNNING.c.id, _RUNNING.c.account_id, _RUNNING.c.balance_after, _RUNNING.c.sum)
    .where(or_(_RUNNING.c.balance_after.is_(None), _RUNNING.c.balance_after != _RUNNING.c.sum))
    .order_by(_RUNNING.c.id)
    .limit(20)
)


class LedgerVerifier:
    def __init__(self, database: Database) -> None:
        self._db = database

    def verify(self) -> VerifyReport:
        report = VerifyReport()
        with self._db.unit_of_work(write=False) as uow:
            s = uow.session
            report.transactions = s.execute(select(func.count()).select_from(Transaction)).scalar_one()
            report.unbalanced_transactions = list(
                s.scalars(
                    select(LedgerEntry.transaction_id)
                    .group_by(LedgerEntry.transaction_id)
                    .having(func.sum(LedgerEntry.amount) != 0)
                )
            )
            report.transactions_without_entries = list(
                s.scalars(
                    select(Transaction.id).where(
                        ~select(LedgerEntry.id).where(LedgerEntry.transaction_id == Transaction.id).exists()
                    )
                )
            )
            sums = (
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount).label("total"))
                .group_by(LedgerEntry.account_id)
                .subquery()
            )
            rows = s.execute(
                select(Account.user_id, Account.balance, func.coalesce(sums.c.total, 0))
                .outerjoin(sums, sums.c.account_id == Account.id)
                .where(Account.kind == "user")
            ).all()
            report.wallets = len(rows)
            for user_id, balance, total in rows:
                report.total_balance += balance
                if balance != total:
                    report.wrong_balances.append({"user_id": user_id, "stored": balance, "entries": int(total)})
                if balance < 0:
                    report.negative_balances.append(user_id)
            system: dict[str, int] = dict(
                s.execute(
                    select(Account.kind, func.coalesce(sums.c.total, 0))
                    .outerjoin(sums, sums.c.account_id == Account.id)
                    .where(Account.kind != "user")
                )
                .tuples()
                .all()
            )
            report.wrong_balances_after = [
                {"entry_id": entry_id, "account_id": account_id, "stored": stored, "entries": int(total)}
                for entry_id, account_id, stored, total in s.execute(_WRONG_BALANCES_AFTER)
            ]
        report.issued = -int(system.get("issuance", 0))
        report.redeemed = int(system.get("redemption", 0))
        return report
