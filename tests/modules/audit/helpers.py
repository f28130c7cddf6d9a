"""Reading and tampering with the audit trail's table behind the app's back."""

from __future__ import annotations

import json
from contextlib import contextmanager

from sqlalchemy import select, text

from app.infrastructure.tables_audit import AuditEntry
from app.testing import deliver_events


def entries(app) -> list[AuditEntry]:
    deliver_events(app)
    with app.container.database().engine.connect() as conn:
        return list(conn.execute(select(AuditEntry).order_by(AuditEntry.sequence)).all())


@contextmanager
def untriggered(app):
    """A connection on which the append-only triggers are off (a tamperer with the database's
    own rights), in one transaction: on PostgreSQL DISABLE TRIGGER, on SQLite dropped and
    made again from the migration's own statements."""
    from importlib import import_module

    migration = import_module("app.migrations.versions.0008_audit_trail")
    engine = app.container.database().engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
            yield conn
            conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_entries_no_update"))
            conn.execute(text("DROP TRIGGER audit_entries_no_delete"))
            yield conn
            for statement in migration.SQLITE_TRIGGERS:
                conn.execute(text(statement))


def set_data(conn, sequence: int, data: dict) -> None:
    conn.execute(
        text("UPDATE audit_entries SET data = :data WHERE sequence = :sequence"),
        {"data": json.dumps(data, sort_keys=True, separators=(",", ":")), "sequence": sequence},
    )
