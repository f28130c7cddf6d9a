"""PostgreSQL refuses, at commit, a transaction whose ledger entries do not sum to zero

A deferred constraint trigger, as django-hordak's check_leg_trigger: it runs for each entry
written, at COMMIT (so a posting may insert its entries in several statements), and raises
if that entry's transaction does not balance. RAISE's own SQLSTATE (P0001, not an
integrity violation) on purpose: the ledger reads an IntegrityError at commit as "the
idempotency key is taken", and an unbalanced posting is a bug, not a taken key. SQLite
has no deferred triggers: there `credit-system ledger verify` remains the check.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 00:00:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE FUNCTION ledger_transaction_balances() RETURNS trigger AS $$
DECLARE
    total bigint;
BEGIN
    SELECT sum(amount) INTO total FROM ledger_entries WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: its entries sum to %, not 0',
            NEW.transaction_id, total;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.transaction_id <> NEW.transaction_id THEN
        SELECT sum(amount) INTO total FROM ledger_entries WHERE transaction_id = OLD.transaction_id;
        IF total <> 0 THEN
            RAISE EXCEPTION 'ledger transaction % does not balance: its entries sum to %, not 0',
                OLD.transaction_id, total;
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

TRIGGER = """
CREATE CONSTRAINT TRIGGER ledger_entries_balance
AFTER INSERT OR UPDATE ON ledger_entries
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balances()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER ledger_entries_balance ON ledger_entries")
    op.execute("DROP FUNCTION ledger_transaction_balances()")
