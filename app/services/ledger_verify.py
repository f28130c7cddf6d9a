"""The ledger's invariants, checked against the database itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

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

    @property
    def ok(self) -> bool:
        return not (
            self.unbalanced_transactions
            or self.transactions_without_entries
            or self.wrong_balances
            or self.negative_balances
            or self.total_balance != self.issued - self.redeemed
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
        report.issued = -int(system.get("issuance", 0))
        report.redeemed = int(system.get("redemption", 0))
        return report
