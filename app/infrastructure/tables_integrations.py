"""integration_module's tables: webhook endpoints, their deliveries, received payment events.

Same MetaData as app/infrastructure/tables.py (Base), so Alembic and `create_all` see them.
Migration 0007 creates them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.infrastructure.tables import Base, BigIntId, UTCDateTime, utcnow
from app.vocabulary import EndpointStatus, PaymentStatus, WebhookDeliveryStatus, sql_in

DUE = "status = 'pending'"


class WebhookEndpoint(Base):
    """A URL that receives events, its secrets (the previous one signs beside the current one
    until `previous_secret_expires_at`), and what its sender needs: a lease so one worker at a
    time sends to it, a pause a 429/503 asked for, and since when it has failed."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (CheckConstraint(sql_in("status", EndpointStatus), name="status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[str] = mapped_column(Text)  # JSON list; [] means every type
    description: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(8))
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first failure after the last success
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # Retry-After of a 429/503
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event owed to one endpoint (unique: a redelivered event adds nothing), its body
    frozen when created so every attempt sends the same bytes, and its attempts' outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        CheckConstraint(sql_in("status", WebhookDeliveryStatus), name="status"),
        Index("ix_webhook_deliveries_due", "endpoint_id", "id", postgresql_where=text(DUE), sqlite_where=text(DUE)),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(String(36), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))  # the envelope's id: the webhook-id header
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the Event as JSON, exactly as sent
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_step: Mapped[int] = mapped_column(Integer, default=0)  # failures since created or retried by hand
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentEvent(Base):
    """A verified payment provider event, once per (provider, provider_id): the checkout
    session's id for a payment (so redeliveries and concurrent deliveries credit once), the
    provider's event id for anything else. A credited one names its deposit."""

    __tablename__ = "payment_events"
    __table_args__ = (
        UniqueConstraint("provider", "provider_id", name="uq_payment_events_provider_id"),
        CheckConstraint(sql_in("status", PaymentStatus), name="status"),
        Index("ix_payment_events_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(255))
    provider_event_id: Mapped[str | None] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[str | None] = mapped_column(String(255))  # client_reference_id as received
    amount: Mapped[int | None] = mapped_column(BigInteger)
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
