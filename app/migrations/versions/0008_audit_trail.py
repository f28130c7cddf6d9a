"""The audit trail: hash-chained entries the database refuses to edit or delete

audit_entries holds one entry per event (unique event_id), in the chain's own gap-free
sequence; audit_purge_permits exists so that `credit-system audit purge` can delete whole
old ranges: triggers refuse every UPDATE of an entry, and every DELETE unless the deleting
transaction holds a permit row (inserted and deleted within the purge's own transaction, so
no other transaction ever sees one). On PostgreSQL statement-level triggers also refuse
TRUNCATE; SQLite has row triggers only (and no TRUNCATE).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REFUSAL = "audit entries are append-only: purge old ranges with credit-system audit purge"

POSTGRES_FUNCTION = f"""
CREATE FUNCTION audit_entries_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_purge_permits) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '{REFUSAL} (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""
POSTGRES_TRIGGERS = [
    "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()",
    "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()",
]
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    f"BEGIN SELECT RAISE(ABORT, '{REFUSAL} (UPDATE refused)'); END",
    f"CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    f"WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permits) "
    f"BEGIN SELECT RAISE(ABORT, '{REFUSAL} (DELETE refused)'); END",
]


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor_type", sa.String(length=8), nullable=False),
        sa.Column("actor_id", sa.String(length=36), nullable=True),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_entries_event_id")),
    )
    for name, columns in (
        ("ix_audit_entries_actor_id_sequence", ["actor_id", "sequence"]),
        ("ix_audit_entries_target_id_sequence", ["target_id", "sequence"]),
        ("ix_audit_entries_action_sequence", ["action", "sequence"]),
        ("ix_audit_entries_occurred_at_sequence", ["occurred_at", "sequence"]),
    ):
        op.create_index(name, "audit_entries", columns, unique=False)
    op.create_table(
        "audit_purge_permits",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_purge_permits")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_entries_no_truncate ON audit_entries")
        op.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
        op.execute("DROP FUNCTION audit_entries_append_only()")
    op.drop_table("audit_purge_permits")  # SQLite drops the triggers with their table
    op.drop_table("audit_entries")
