"""The audit trail's tables (app.services.audit): the hash-chained entries, and the permit a
deliberate purge holds while it deletes (the triggers of migration 0008 refuse anything else)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.infrastructure.tables import Base, UTCDateTime


class AuditEntry(Base):
    """One event as the audit trail keeps it, chained: `hash` = SHA-256(prev_hash + canonical
    content); `sequence` is the chain's own (gap-free from 1, or from the last purge)."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        # Newest first with a filter: each walks one index backwards (flat at any size).
        Index("ix_audit_entries_actor_id_sequence", "actor_id", "sequence"),
        Index("ix_audit_entries_target_id_sequence", "target_id", "sequence"),
        Index("ix_audit_entries_action_sequence", "action", "sequence"),
        Index("ix_audit_entries_occurred_at_sequence", "occurred_at", "sequence"),
    )

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)  # one entry per event, however often delivered
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(64))  # the event type
    actor_type: Mapped[str] = mapped_column(String(8))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)  # canonical JSON, secrets masked
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditPurgePermit(Base):
    """Present only inside a purge's own transaction (inserted, used, deleted before commit):
    the triggers let a DELETE of audit entries through while a permit row exists, and no
    other transaction ever sees one."""

    __tablename__ = "audit_purge_permits"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
