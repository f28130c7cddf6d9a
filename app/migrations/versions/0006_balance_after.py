"""Ledger entries carry the wallet's balance_after, backfilled; an index by (account, time)

With the balance after each entry stored, a wallet's balance as of any moment is one
indexed lookup (its last entry before that moment) and a statement is one range scan;
`ix_ledger_entries_account_created_id` serves both. Existing entries of wallets get the
running sum of their wallet's entries in id order (the order the writers applied them:
each took its wallet's row lock before inserting); entries of system accounts, which keep
no balance, stay NULL. On PostgreSQL the balance trigger is set aside during the backfill:
it checks amounts and transaction ids, which the backfill leaves as they are, and would
otherwise run once per updated row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE ledger_entries SET balance_after = running.balance_after
FROM (
    SELECT e.id, SUM(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.id) AS balance_after
    FROM ledger_entries e JOIN accounts a ON a.id = e.account_id
    WHERE a.kind = 'user'
) AS running
WHERE ledger_entries.id = running.id
"""
TRIGGER = "ledger_entries_balance"


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None, recreate="never") as batch:
        batch.add_column(sa.Column("balance_after", sa.BigInteger(), nullable=True))
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(f"ALTER TABLE ledger_entries DISABLE TRIGGER {TRIGGER}")
    op.execute(BACKFILL)
    if postgres:
        op.execute(f"ALTER TABLE ledger_entries ENABLE TRIGGER {TRIGGER}")
    op.create_index("ix_ledger_entries_account_created_id", "ledger_entries", ["account_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_account_created_id", table_name="ledger_entries")
    with op.batch_alter_table("ledger_entries", schema=None) as batch:
        batch.drop_column("balance_after")
