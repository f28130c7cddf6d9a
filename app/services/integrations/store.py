"""SQL shared by the webhook and payment services."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def insert_or_skip(session: Session, table: Table, rows: list[dict[str, Any]] | dict[str, Any], *unique: str) -> int:
    """INSERT ... ON CONFLICT (unique) DO NOTHING; how many rows went in.

    Under concurrency this is what makes "once" hold: on PostgreSQL a second transaction
    inserting the same key waits for the first and then inserts nothing (no check-then-insert
    window); SQLite serializes writers anyway.
    """
    bind = session.get_bind()
    build = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    # Counted from RETURNING: an INSERT's rowcount is not reliable across drivers (psycopg says -1).
    key = table.c[unique[0]]
    statement = build(table).values(rows).on_conflict_do_nothing(index_elements=list(unique)).returning(key)
    return len(session.execute(statement).all())
