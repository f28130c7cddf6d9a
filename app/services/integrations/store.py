"""SQL shared by the webhook and payment services."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from app.infrastructure.upsert import dialect_insert


def insert_or_skip(session: Session, table: Table, rows: list[dict[str, Any]] | dict[str, Any], *unique: str) -> int:
    """INSERT ... ON CONFLICT (unique) DO NOTHING; how many rows went in.

    Under concurrency this is what makes "once" hold: on PostgreSQL a second transaction
    inserting the same key waits for the first and then inserts nothing (no check-then-insert
    window); SQLite serializes writers anyway.
    """
    # Counted from RETURNING: an INSERT's rowcount is not reliable across drivers (psycopg says -1).
    key = table.c[unique[0]]
    statement = (
        dialect_insert(session, table).values(rows).on_conflict_do_nothing(index_elements=list(unique)).returning(key)
    )
    return len(session.execute(statement).all())
