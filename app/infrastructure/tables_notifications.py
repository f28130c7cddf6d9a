"""notification_module's tables (migration 0010): preferences, the inbox, the delivery log.

One notification per (event, user, topic) and one delivery per (notification, channel): the
unique constraints, not a check before the insert, make a redelivered event or two racing
workers write each once. An event gives a user one topic, except a debit that also crosses
the low-balance threshold (two notifications, each with its own deliveries).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.infrastructure.tables import Base, UTCDateTime, utcnow
from app.vocabulary import NotificationChannel, NotificationStatus, NotificationTopic, sql_in

QUEUED = f"status = '{NotificationStatus.QUEUED.value}'"


class NotificationPreference(Base):
    """A user's choices; absent until the user changes one (the defaults apply)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), primary_key=True)
    topics: Mapped[str] = mapped_column(Text, default="{}")  # JSON {topic: {channel: bool}}: the changed ones
    low_balance_threshold: Mapped[int | None] = mapped_column(BigInteger)  # None: the default
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Base):
    """One notification of one event for one user; in the inbox when `in_app` was on."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id", "topic", name="uq_notifications_event_user_topic"),
        CheckConstraint(sql_in("topic", NotificationTopic), name="topic"),
        Index("ix_notifications_user_created_id", "user_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid5 of (event, user, topic)
    user_id: Mapped[str] = mapped_column(String(36))
    event_id: Mapped[str] = mapped_column(String(36))
    topic: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)  # JSON
    in_app: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationDelivery(Base):
    """One email or SMS of a notification, and every attempt's outcome (the delivery log)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", name="uq_notification_deliveries_notification_channel"),
        CheckConstraint(sql_in("channel", NotificationChannel), name="channel"),
        CheckConstraint(sql_in("status", NotificationStatus), name="status"),
        Index("ix_notification_deliveries_user_created_id", "user_id", "created_at", "id"),
        # the sweep's question: which queued ones are due
        Index(
            "ix_notification_deliveries_due",
            "next_attempt_at",
            postgresql_where=QUEUED,
            sqlite_where=QUEUED,
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid5 of (notification, channel)
    notification_id: Mapped[str] = mapped_column(String(36), ForeignKey("notifications.id"))
    user_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str | None] = mapped_column(String(254))  # served masked only
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the sender holding it ...
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # ... until then
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
