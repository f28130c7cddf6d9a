"""INSERT ... ON CONFLICT on either backend: the one place that picks the dialect's INSERT."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

UPSERT_DIALECTS = ("postgresql", "sqlite")


def dialect_insert(session: Session, table: Table) -> Any:
    """The session's dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite alike)."""
    name = session.get_bind().dialect.name
    if name not in UPSERT_DIALECTS:
        raise TypeError(f"ON CONFLICT needs PostgreSQL or SQLite, not {name}")
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def insert_ignoring_duplicates(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of many rows (one statement, sent as executemany)."""
    if rows:
        session.execute(dialect_insert(session, table).on_conflict_do_nothing(), rows)
