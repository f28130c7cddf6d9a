"""The names every layer shares: transaction types, roles and the core event types.

Standard library only, and the bottom of the layer order (see setup.cfg's import-linter
contracts), so the schema's CHECK constraints (app.infrastructure.tables), the rules
(app.services) and the API's schemas and OpenAPI enums (app.schemas) all read the one list.
Adding a member here is the whole code change; the database still needs a migration that
widens its CHECK (tests/api/test_vocabulary.py fails until it has one).
"""

from __future__ import annotations

from enum import StrEnum


class TransactionType(StrEnum):
    """What a ledger transaction is; stored in transactions.type and ledger_entries.tx_type."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    REVERSAL = "reversal"


class Role(StrEnum):
    """A user's role; stored in users.role."""

    USER = "user"
    ADMIN = "admin"
    AUDITOR = "auditor"  # reads everything an admin reads, changes nothing but its own password


class EventType(StrEnum):
    """The core's event types (app.events serves them with their descriptions; modules add their own)."""

    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DEACTIVATED = "user.deactivated"
    LOGIN_SUCCEEDED = "auth.login_succeeded"
    LOGIN_FAILED = "auth.login_failed"
    TRANSACTION_POSTED = "transaction.posted"


class DeliveryStatus(StrEnum):
    """Where one event's delivery to one module stands; stored in event_deliveries.status."""

    PENDING = "pending"  # not handled yet
    FAILED = "failed"  # the last attempt raised; another is scheduled at next_attempt_at
    DEAD = "dead"  # out of attempts: an operator retries it (POST /events/deliveries/{id}/retry)
    DONE = "done"  # handled; its effect committed with this mark


class NotificationTopic(StrEnum):
    """What a notification is about; users choose channels per topic (notification_module)."""

    TRANSFER_RECEIVED = "transfer_received"
    TRANSFER_SENT = "transfer_sent"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    REVERSAL = "reversal"
    LOW_BALANCE = "low_balance"
    SECURITY = "security"  # password, role, deactivation: its email cannot be turned off


class NotificationChannel(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    SMS = "sms"


class NotificationStatus(StrEnum):
    """Where one email or SMS stands; stored in notification_deliveries.status."""

    QUEUED = "queued"  # to be sent (or being sent, while claimed), retried after a transient failure
    SENT = "sent"
    FAILED = "failed"  # a permanent failure, or out of attempts
    SUPPRESSED = "suppressed"  # wanted but impossible (an SMS to a user without a phone)


# One line each, as GET /events/types lists them.
EVENT_DESCRIPTIONS: dict[str, str] = {
    EventType.USER_CREATED: "a user registered (or was created by an admin); data.user is the User",
    EventType.USER_UPDATED: "a user's email, phone, password, role or active flag changed; data.changed names them",
    EventType.USER_DEACTIVATED: "a user was deactivated: no more logins, every token stops working",
    EventType.LOGIN_SUCCEEDED: "a login succeeded; data.identifier is the username or email given",
    EventType.LOGIN_FAILED: "a login failed; data.identifier is what was tried, data.reason why",
    EventType.TRANSACTION_POSTED: "money moved; data.transaction is the Transaction, data.balances each wallet's after",
}


def sql_in(column: str, vocabulary: type[StrEnum]) -> str:
    """`column IN ('a', 'b')`: a CHECK constraint's text for the vocabulary's values, in order."""
    values = ", ".join("'" + member.value.replace("'", "''") + "'" for member in vocabulary)
    return f"{column} IN ({values})"


def event_type_matches(pattern: str, event_type: str) -> bool:
    """Whether a module's EVENT_TYPES entry covers event_type: the exact type, a prefix
    ending in "." ("transaction." covers "transaction.posted"), or "*" (every type)."""
    if pattern == "*":
        return True
    if pattern.endswith("."):
        return event_type.startswith(pattern)
    return pattern == event_type


# -- integration_module (webhooks and inbound payments) ------------------------------------
class EndpointStatus(StrEnum):
    """A webhook endpoint's state; stored in webhook_endpoints.status."""

    ACTIVE = "active"
    DISABLED = "disabled"  # by an admin, by a 410 Gone, or after failing for days


class WebhookDeliveryStatus(StrEnum):
    """Where one event's delivery to one webhook endpoint stands; webhook_deliveries.status."""

    PENDING = "pending"  # not sent yet, or failed and due again at next_attempt_at
    SUCCEEDED = "succeeded"  # the endpoint answered 2xx
    FAILED = "failed"  # out of attempts, or its endpoint was disabled: retried only by hand


class PaymentStatus(StrEnum):
    """What became of a received payment event; stored in payment_events.status."""

    CREDITED = "credited"  # the deposit was posted with it
    UNMATCHED = "unmatched"  # paid, but no active user (or no usable amount) to credit: for an admin
    IGNORED = "ignored"  # a type or state that moves no money


def ascii_int(text: str, max_digits: int = 18) -> int | None:
    """`text` as a non-negative integer when it is 1 to `max_digits` ASCII digits, else None.

    str.isdigit alone is not enough: "³".isdigit() is True and int("³") raises; ids, sequences,
    timestamps and headers from outside are read through this one check."""
    if not (0 < len(text) <= max_digits and text.isascii() and text.isdigit()):
        return None
    return int(text)
