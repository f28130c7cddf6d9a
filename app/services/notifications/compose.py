"""Which users an event concerns, and under which topic: a pure function of the event (and,
for low balance, each user's threshold), so it is tested without a database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.vocabulary import EventType, NotificationTopic, TransactionType

Topic = NotificationTopic
# The user.updated fields whose change is a security notification (email and phone are not:
# a message to the new address tells its owner nothing they do not know).
SECURITY_FIELDS = ("password", "role", "is_active")


@dataclass(frozen=True)
class Intent:
    """Tell `user_id` about `topic`; `data` is what the message may say (never a secret)."""

    user_id: str
    topic: Topic
    data: dict[str, Any] = field(default_factory=dict)
    counterparty_id: str | None = None  # named in the message by username, looked up later


def intents(event_type: str, data: dict[str, Any], threshold_of: Callable[[str], int]) -> list[Intent]:
    if event_type == EventType.TRANSACTION_POSTED:
        return _transaction(data["transaction"], data.get("balances", {}), threshold_of)
    if event_type == EventType.USER_UPDATED:
        changed = [name for name in data.get("changed", ()) if name in SECURITY_FIELDS]
        if not changed:
            return []
        user = data["user"]
        details = {"changed": changed, "role": user.get("role"), "is_active": user.get("is_active")}
        return [Intent(user["id"], Topic.SECURITY, details)]
    if event_type == EventType.USER_DEACTIVATED:
        user = data["user"]
        return [Intent(user["id"], Topic.SECURITY, {"changed": ["is_active"], "is_active": False})]
    return []


def _transaction(tx: dict[str, Any], balances: dict[str, int], threshold_of: Callable[[str], int]) -> list[Intent]:
    kind, amount = tx["type"], tx["amount"]
    debited, credited = tx.get("from_user_id"), tx.get("to_user_id")  # every type debits from, credits to
    common = {"transaction_id": tx["id"], "type": kind, "amount": amount, "description": tx.get("description")}

    def about(user_id: str, topic: Topic, other: str | None, **extra: Any) -> Intent:
        return Intent(user_id, topic, {**common, "balance": balances.get(user_id), **extra}, other)

    found: list[Intent] = []
    if kind == TransactionType.DEPOSIT and credited:
        found.append(about(credited, Topic.DEPOSIT, None))
    elif kind == TransactionType.WITHDRAWAL and debited:
        found.append(about(debited, Topic.WITHDRAWAL, None))
    elif kind == TransactionType.TRANSFER:
        if debited:
            found.append(about(debited, Topic.TRANSFER_SENT, credited))
        if credited:
            found.append(about(credited, Topic.TRANSFER_RECEIVED, debited))
    elif kind == TransactionType.REVERSAL:
        extra = {"reverses": tx.get("reverses")}
        if debited:
            found.append(about(debited, Topic.REVERSAL, credited, direction="debited", **extra))
        if credited:
            found.append(about(credited, Topic.REVERSAL, debited, direction="credited", **extra))
    if debited and debited in balances:
        after = balances[debited]
        threshold = threshold_of(debited)
        # Hysteresis: only a debit that crosses from at-or-above to below fires; the next one
        # fires only after the balance has been back at or above the threshold.
        if after + amount >= threshold > after:
            found.append(Intent(debited, Topic.LOW_BALANCE, {**common, "balance": after, "threshold": threshold}))
    return found
