"""Inbound payments (API.md "Inbound payments"): a provider's signed event tops up a wallet.

The classic bug is crediting a purchase twice when the provider redelivers. Here the
signature of the raw body is verified first (nothing is read or written before), then ONE
transaction both records the payment under its unique provider id (the checkout session)
and posts the deposit through the ledger: a redelivery, however concurrent, finds the id
taken (ON CONFLICT DO NOTHING waits for the first transaction on PostgreSQL) and posts
nothing; a failed deposit leaves no record behind to short-circuit the provider's retry.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, select

from app.infrastructure.database import Database, UnitOfWork
from app.infrastructure.tables import ISSUANCE_ACCOUNT
from app.infrastructure.tables_integrations import PaymentEvent
from app.services.errors import DomainError, Forbidden, InvalidSignature
from app.services.integrations.signing import verify_stripe
from app.services.integrations.store import insert_or_skip
from app.services.ledger import Ledger, Leg, Posting
from app.services.pagination import cursor_id, decode_cursor, encode_cursor
from app.services.principal import Principal
from app.vocabulary import PaymentStatus, TransactionType

STRIPE = "stripe"
PAID_CHECKOUT = "checkout.session.completed"
_payments = cast(Table, PaymentEvent.__table__)
_USER_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_DIGITS = re.compile(r"^[0-9]{1,13}$")
MAX_CREDITS = 1_000_000_000_000  # API.md's largest amount


class _AlreadyRecorded(Exception):
    """This payment was recorded by an earlier (or a concurrent, now committed) delivery."""


@dataclass(frozen=True)
class Receipt:
    """What became of a received event: status, and whether it had been received before."""

    status: str
    duplicate: bool = False
    transaction_id: str | None = None

    def body(self) -> dict[str, Any]:
        return {"received": True, "status": self.status, "duplicate": self.duplicate}


def _clean(value: Any, limit: int = 255) -> str | None:
    """A provider string the database can hold (no NUL, not too long), else None."""
    if isinstance(value, str) and value and len(value) <= limit and "\x00" not in value:
        return value
    return None


class PaymentService:
    def __init__(self, database: Database, ledger: Ledger, stripe_secret: str, credits_per_unit: int) -> None:
        self._db, self._ledger = database, ledger
        self._stripe_secret, self._per_unit = stripe_secret, credits_per_unit

    @property
    def configured(self) -> bool:
        return bool(self._stripe_secret)

    def receive_stripe(self, signature: str | None, body: bytes) -> Receipt:
        if not verify_stripe(self._stripe_secret, signature, body):
            raise InvalidSignature()
        try:
            event = json.loads(body)
        except ValueError:
            raise DomainError("the body is not JSON") from None
        if not isinstance(event, dict):
            raise DomainError("the body must be a JSON object")
        event_type = _clean(event.get("type"), 64) or "unknown"
        event_id = _clean(event.get("id"))
        data = event.get("data")
        session = data.get("object") if isinstance(data, dict) else None
        session = session if isinstance(session, dict) else {}
        payload = body.decode("utf-8", "replace")
        base = {"provider": STRIPE, "provider_event_id": event_id, "event_type": event_type, "payload": payload}

        session_id = _clean(session.get("id"))
        if event_type != PAID_CHECKOUT or session.get("payment_status") != "paid" or session_id is None:
            # Moves no money: kept once per provider event, for the admins' list.
            key = event_id or "sha256:" + hashlib.sha256(body).hexdigest()
            reason = "no checkout session id" if event_type == PAID_CHECKOUT and session_id is None else None
            return self._record_only({**base, "provider_id": key, "reason": reason}, PaymentStatus.IGNORED)

        base["provider_id"] = session_id
        user_id = _clean(session.get("client_reference_id"), 36)
        if user_id is None or not _USER_ID.match(user_id):
            return self._unmatched(base, session.get("client_reference_id"), None, "client_reference_id names no user")
        amount = self._amount(session)
        if amount is None:
            return self._unmatched(base, user_id, None, "no usable amount (metadata.credits or amount_total)")
        try:
            transaction_id = self._deposit(base, user_id, amount, session_id)
        except _AlreadyRecorded:
            return Receipt(self._status_of(session_id), duplicate=True)
        except DomainError as refused:  # an unknown or inactive user
            return self._unmatched(base, user_id, amount, f"not credited: {refused.message}"[:200])
        return Receipt(PaymentStatus.CREDITED.value, transaction_id=transaction_id)

    def _amount(self, session: dict[str, Any]) -> int | None:
        metadata = session.get("metadata")
        credits = metadata.get("credits") if isinstance(metadata, dict) else None
        if credits is not None:
            amount = int(credits) if isinstance(credits, str) and _DIGITS.match(credits) else None
        else:
            total = session.get("amount_total")
            amount = total * self._per_unit if isinstance(total, int) and not isinstance(total, bool) else None
        return amount if amount is not None and 1 <= amount <= MAX_CREDITS else None

    def _deposit(self, base: dict[str, Any], user_id: str, amount: int, session_id: str) -> str:
        """Record the payment and post its deposit in one transaction; the transaction's id."""
        legs = (Leg(-amount, account_id=ISSUANCE_ACCOUNT), Leg(amount, user_id=user_id, active=True))

        def prepare(uow: UnitOfWork) -> Posting:
            posting = Posting(
                type=TransactionType.DEPOSIT,
                legs=legs,
                created_by=None,  # the system: no user asked for it
                to_user_id=user_id,
                description=f"stripe:{session_id}"[:500],
            )
            row = {
                **base,
                "status": PaymentStatus.CREDITED.value,
                "user_id": user_id,
                "amount": amount,
                "transaction_id": posting.id,
                "reason": None,
            }
            # First, so a redelivery stops here (or waits here for the first one's commit).
            if not insert_or_skip(uow.session, _payments, row, "provider", "provider_id"):
                raise _AlreadyRecorded()
            self._ledger.require_user(uow, user_id, "client_reference_id")
            return posting

        outcome = self._ledger.execute(prepare)
        return str(outcome.body.get("id"))

    def _unmatched(self, base: dict[str, Any], user_id: Any, amount: int | None, reason: str) -> Receipt:
        row = {**base, "user_id": _clean(user_id), "amount": amount, "reason": reason}
        return self._record_only(row, PaymentStatus.UNMATCHED)

    def _record_only(self, row: dict[str, Any], status: PaymentStatus) -> Receipt:
        with self._db.unit_of_work() as uow:
            recorded = insert_or_skip(
                uow.session, _payments, {**row, "status": status.value}, "provider", "provider_id"
            )
            uow.commit()
        if not recorded:
            return Receipt(self._status_of(row["provider_id"]), duplicate=True)
        return Receipt(status.value)

    def _status_of(self, provider_id: str) -> str:
        with self._db.unit_of_work(write=False) as uow:
            status = uow.session.scalar(
                select(_payments.c.status).where(_payments.c.provider == STRIPE, _payments.c.provider_id == provider_id)
            )
        return str(status or PaymentStatus.IGNORED.value)

    # -- the admins' list ------------------------------------------------------------------------
    def payments(self, actor: Principal, status: str | None, limit: int, cursor: str | None) -> tuple[list, str | None]:
        if not actor.may_act_for(read=True):
            raise Forbidden("only an admin may list received payments")
        after = decode_cursor(cursor, 1)
        query = select(_payments)
        if status:
            query = query.where(_payments.c.status == status)
        if after:
            query = query.where(_payments.c.id < cursor_id(after[0]))
        with self._db.unit_of_work(write=False) as uow:
            rows = uow.session.execute(query.order_by(_payments.c.id.desc()).limit(limit + 1)).all()
        more, rows = len(rows) > limit, rows[:limit]
        return [payment_view(row) for row in rows], encode_cursor(rows[-1].id) if more and rows else None

    def unmatched_count(self) -> int:
        with self._db.unit_of_work(write=False) as uow:
            count = uow.session.scalar(
                select(func.count()).select_from(_payments).where(_payments.c.status == PaymentStatus.UNMATCHED)
            )
        return int(count or 0)


def payment_view(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "provider": row.provider,
        "provider_id": row.provider_id,
        "event_id": row.provider_event_id,
        "event_type": row.event_type,
        "status": row.status,
        "user_id": row.user_id,
        "amount": row.amount,
        "transaction_id": row.transaction_id,
        "reason": row.reason,
        "received_at": row.received_at,
    }
