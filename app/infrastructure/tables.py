"""The relational schema; Alembic migrations in app/migrations create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.vocabulary import DeliveryStatus, Role, TransactionType, sql_in

# Named constraints so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants 64 bits.
BigIntId = BigInteger().with_variant(Integer, "sqlite")

ISSUANCE_ACCOUNT = "system:issuance"
REDEMPTION_ACCOUNT = "system:redemption"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(sql_in("role", Role), name="role"),
        Index("ix_users_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(16))  # E.164: where SMS notifications go
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10), default=Role.USER.value)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Account(Base):
    """A user's wallet or a system account; only wallets carry a stored balance."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'user' AND user_id IS NOT NULL AND balance IS NOT NULL AND balance >= 0)"
            " OR (kind <> 'user' AND user_id IS NULL AND balance IS NULL)",
            name="balance_rules",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="user")
    balance: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(sql_in("type", TransactionType), name="type"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    from_user_id: Mapped[str | None] = mapped_column(String(36))
    to_user_id: Mapped[str | None] = mapped_column(String(36))
    description: Mapped[str | None] = mapped_column(String(500))
    reverses: Mapped[str | None] = mapped_column(String(36), ForeignKey("transactions.id"), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """One leg of a transaction; the legs of a transaction sum to zero."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        Index("ix_ledger_entries_account_type_id", "account_id", "tx_type", "id"),
        # a balance as of a moment (one lookup) and a statement of a period (one range scan)
        Index("ix_ledger_entries_account_created_id", "account_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(36), ForeignKey("transactions.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(36), ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    tx_type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the wallet's balance once this entry was applied (entries of a wallet apply in id
    # order); None on a system account, which keeps no balance
    balance_after: Mapped[int | None] = mapped_column(BigInteger)


class IdempotencyKey(Base):
    """A processed request's outcome, stored in the same DB transaction as its effect."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# Deliveries that still owe work (pending, or failed with a retry scheduled): the partial
# index every drain, backlog and health query reads.
OWED = "status IN ('pending', 'failed')"
UNSTAMPED = "sequence IS NULL"


class OutboxEvent(Base):
    """An event, written in the transaction that caused it; `sequence` is stamped after commit
    by the relay (app.events.relay), gap-free and in the order events became visible."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint("actor_type IN ('user', 'system')", name="actor_type"),
        Index("ix_outbox_events_unstamped", "id", postgresql_where=text(UNSTAMPED), sqlite_where=text(UNSTAMPED)),
        Index("ix_outbox_events_type_sequence", "type", "sequence"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)  # insertion order
    event_id: Mapped[str] = mapped_column(String(36), unique=True)  # the envelope's public id
    sequence: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[str] = mapped_column(String(8))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    request_id: Mapped[str | None] = mapped_column(String(128))
    remote_addr: Mapped[str | None] = mapped_column(String(64))  # internal: handed to handlers, never served
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)  # JSON


class EventSubscriber(Base):
    """A module that handles events, and the lease that lets one worker at a time drain it."""

    __tablename__ = "event_subscribers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventDelivery(Base):
    """One event owed to one subscribing module; marked done in the handler's own transaction."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscriber", name="uq_event_deliveries_event_subscriber"),
        CheckConstraint(sql_in("status", DeliveryStatus), name="status"),
        Index(
            "ix_event_deliveries_owed", "subscriber", "sequence", postgresql_where=text(OWED), sqlite_where=text(OWED)
        ),
        Index("ix_event_deliveries_status_subscriber_id", "status", "subscriber", "id"),
        Index("ix_event_deliveries_subscriber_id", "subscriber", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("outbox_events.id"))
    subscriber: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger)  # the event's, for ordering without a join
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
