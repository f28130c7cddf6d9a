"""The event backbone: the envelope on outbox_events, deliveries per module, subscriber leases

outbox_events keeps its bigint id as insertion order and gains the envelope (a public
event_id, who and where: actor, request_id, remote_addr, what about: target) and a
`sequence` the relay stamps after commit. Rows recorded before this revision had no
subscribers to owe anything to: they are stamped here, in id order, so the feed starts
complete, and no delivery is created for them. event_deliveries holds one row per (event,
module); event_subscribers one lease per module. docs/events.md explains the model.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

import json
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OWED = "status IN ('pending', 'failed')"
UNSTAMPED = "sequence IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch:
        batch.drop_index("ix_outbox_events_pending")
        batch.alter_column("event_type", new_column_name="type", existing_type=sa.String(64), existing_nullable=False)
        batch.alter_column("payload", new_column_name="data", existing_type=sa.Text(), existing_nullable=False)
        batch.alter_column(
            "created_at",
            new_column_name="occurred_at",
            existing_type=sa.DateTime(timezone=True),
            existing_nullable=False,
        )
        batch.alter_column(
            "aggregate_id",
            new_column_name="target_id",
            type_=sa.String(64),
            existing_type=sa.String(36),
            nullable=True,
        )
        batch.drop_column("processed_at")
        batch.add_column(sa.Column("event_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("actor_type", sa.String(8), nullable=False, server_default="system"))
        batch.add_column(sa.Column("actor_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("remote_addr", sa.String(64), nullable=True))
        batch.add_column(sa.Column("target_type", sa.String(32), nullable=True))

    events = sa.table(
        "outbox_events",
        sa.column("id", sa.BigInteger()),
        sa.column("type", sa.String()),
        sa.column("data", sa.Text()),
        sa.column("event_id", sa.String()),
        sa.column("sequence", sa.BigInteger()),
        sa.column("target_type", sa.String()),
    )
    bind = op.get_bind()
    earlier = bind.execute(sa.select(events.c.id, events.c.type, events.c.data).order_by(events.c.id)).all()
    for sequence, (row_id, event_type, data) in enumerate(earlier, start=1):
        bind.execute(
            events.update()
            .where(events.c.id == row_id)
            .values(
                event_id=str(uuid.uuid4()),
                sequence=sequence,
                target_type=event_type.split(".", 1)[0] if "." in event_type else None,
                data=data if _is_json_object(data) else json.dumps({"payload": data}),
            )
        )

    with op.batch_alter_table("outbox_events", schema=None) as batch:
        batch.alter_column("event_id", existing_type=sa.String(36), nullable=False)
        batch.alter_column("actor_type", existing_type=sa.String(8), server_default=None)
        batch.create_unique_constraint("uq_outbox_events_event_id", ["event_id"])
        batch.create_unique_constraint("uq_outbox_events_sequence", ["sequence"])
        batch.create_check_constraint(op.f("ck_outbox_events_actor_type"), "actor_type IN ('user', 'system')")
        batch.create_index("ix_outbox_events_type_sequence", ["type", "sequence"])
    op.create_index(
        "ix_outbox_events_unstamped",
        "outbox_events",
        ["id"],
        postgresql_where=sa.text(UNSTAMPED),
        sqlite_where=sa.text(UNSTAMPED),
    )

    op.create_table(
        "event_subscribers",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_event_subscribers"),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", BIGINT_ID, nullable=False),
        sa.Column("subscriber", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'failed', 'dead', 'done')", name="ck_event_deliveries_status"),
        sa.ForeignKeyConstraint(["event_id"], ["outbox_events.id"], name="fk_event_deliveries_event_id_outbox_events"),
        sa.PrimaryKeyConstraint("id", name="pk_event_deliveries"),
        sa.UniqueConstraint("event_id", "subscriber", name="uq_event_deliveries_event_subscriber"),
    )
    op.create_index(
        "ix_event_deliveries_owed",
        "event_deliveries",
        ["subscriber", "sequence"],
        postgresql_where=sa.text(OWED),
        sqlite_where=sa.text(OWED),
    )
    op.create_index("ix_event_deliveries_status_subscriber_id", "event_deliveries", ["status", "subscriber", "id"])
    op.create_index("ix_event_deliveries_subscriber_id", "event_deliveries", ["subscriber", "id"])


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def downgrade() -> None:
    op.drop_table("event_deliveries")
    op.drop_table("event_subscribers")
    op.drop_index("ix_outbox_events_unstamped", table_name="outbox_events")
    with op.batch_alter_table("outbox_events", schema=None) as batch:
        batch.drop_index("ix_outbox_events_type_sequence")
        batch.drop_constraint(op.f("ck_outbox_events_actor_type"), type_="check")
        batch.drop_constraint("uq_outbox_events_sequence", type_="unique")
        batch.drop_constraint("uq_outbox_events_event_id", type_="unique")
        for column in ("target_type", "remote_addr", "request_id", "actor_id", "actor_type", "sequence", "event_id"):
            batch.drop_column(column)
        batch.add_column(sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column(
            "target_id", new_column_name="aggregate_id", type_=sa.String(36), existing_type=sa.String(64)
        )
        batch.alter_column("occurred_at", new_column_name="created_at", existing_type=sa.DateTime(timezone=True))
        batch.alter_column("data", new_column_name="payload", existing_type=sa.Text())
        batch.alter_column("type", new_column_name="event_type", existing_type=sa.String(64))
        batch.create_index("ix_outbox_events_pending", ["processed_at", "id"])
