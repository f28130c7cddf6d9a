"""The sending half: claim a queued delivery, send it, record the outcome.

Runs in huey tasks after the handler's commit, in the sweep, or inline in tests; never in
a handler. A claim is one conditional UPDATE (queued, due, not held by a live claim) that
only one process can win, so two workers racing on one delivery send one message. The
claim outlives a whole send (CLAIM_SECONDS > the adapters' timeouts), and expires if its
holder dies, when the sweep hands the delivery to another worker.

Deliveries go SEND_CHUNK at a time: one claim, the emails over one SMTP connection, and the
successes recorded together in one transaction after the chunk (failures at once, each
with its retry). The one way a message can go twice is a worker killed after the provider
took it and before the chunk's outcome committed: at most a chunk, each message again with
its Message-ID, by which a mailbox tells it is the same.

Transient failures are retried with exponential backoff (full jitter) up to `max_attempts`;
permanent ones, and the last transient one, make the delivery `failed` and record a
`notification.failed` event in the same transaction.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import cast

from sqlalchemy import CursorResult, Table, and_, bindparam, or_, select, update

from app.infrastructure.database import Database
from app.infrastructure.notify import DeliveryFailure, Mailer, PermanentFailure, SmsGateway, TransientFailure
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.tables import User, utcnow
from app.infrastructure.tables_notifications import Notification, NotificationDelivery
from app.services.notifications.masking import mask, scrub
from app.services.notifications.render import Renderer
from app.vocabulary import NotificationChannel, NotificationStatus

log = logging.getLogger(__name__)

NOTIFICATION_FAILED = "notification.failed"
CLAIM_SECONDS = 120.0
SWEEP_BATCH = 200
# Deliveries claimed together: their sends (each within the adapters' 10 s timeouts) fit in
# a claim's CLAIM_SECONDS even when every one of them times out.
SEND_CHUNK = 10
WAKE_GRACE_SECONDS = 15.0  # a wake-up this late was lost (or the queue is behind)
Status, Channel = NotificationStatus, NotificationChannel
D = NotificationDelivery
_deliveries = cast(Table, NotificationDelivery.__table__)
# One statement for a chunk's successes, executed with each row's own Message-ID.
_MARK_SENT = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("delivery_id"), _deliveries.c.claimed_by == bindparam("owner"))
    .values(
        status=Status.SENT,
        sent_at=bindparam("sent_at"),
        message_id=bindparam("message_id"),
        last_error=None,
        claimed_by=None,
        claimed_until=None,
    )
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 30.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int) -> float:
        """Before attempt `attempts + 1`: uniform in [base/2, min(max, base × 2^(attempts-1))]."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return random.uniform(min(self.base_seconds / 2, ceiling), ceiling)


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    status: str  # sent | queued (retry later) | failed | skipped (not ours to send now)
    retry_at: datetime | None = None


class Sender:
    def __init__(
        self,
        database: Database,
        mailer: Mailer,
        sms: SmsGateway,
        renderer: Renderer,
        mail_from: str,
        sms_from: str,
        policy: RetryPolicy,
    ) -> None:
        self._db = database
        self.mailer, self.sms, self.renderer = mailer, sms, renderer
        self.mail_from, self.sms_from = mail_from, sms_from
        self.policy = policy
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.schedule_retry: Callable[[str, datetime], None] | None = None  # set by the module (huey)
        self._woken: dict[str, float] = {}  # delivery id -> when this process's sweep woke it

    # -- one delivery -------------------------------------------------------------------------
    def send(self, delivery_id: str, now: datetime | None = None) -> Outcome:
        """Send one delivery if it is queued, due and not claimed; record what happened."""
        return self.send_many([delivery_id], now)[0]

    def send_many(self, delivery_ids: list[str], now: datetime | None = None) -> list[Outcome]:
        """Send several (their outcomes, in the same order): SEND_CHUNK at a time, each
        chunk claimed in one UPDATE and one SELECT, its emails sent over one connection, its
        successes recorded in one transaction at its end."""
        outcomes: dict[str, Outcome] = {}
        for start in range(0, len(delivery_ids), SEND_CHUNK):
            chunk = delivery_ids[start : start + SEND_CHUNK]
            sent: list[_Claim] = []
            with self.mailer.connection():
                for claim in self._claim(chunk, now or utcnow()):
                    failed = self._hand_over_or_fail(claim)
                    if failed is None:
                        sent.append(claim)
                    else:
                        outcomes[claim.id] = failed
            outcomes.update((outcome.delivery_id, outcome) for outcome in self._sent(sent))
        return [outcomes.get(delivery_id) or Outcome(delivery_id, "skipped") for delivery_id in delivery_ids]

    def _hand_over_or_fail(self, claim: _Claim) -> Outcome | None:
        """None when the provider took the message; else the failure, recorded."""
        try:
            self._hand_over(claim)
        except DeliveryFailure as exc:
            return self._failed(claim, exc)
        except Exception as exc:  # a bug or a broken template: never retried blindly forever
            log.exception("notification delivery %s: unexpected error", claim.id)
            return self._failed(claim, TransientFailure(f"{type(exc).__name__} while sending"))
        return None

    def _claim(self, delivery_ids: list[str], now: datetime) -> list[_Claim]:
        """Claim those of the deliveries that are queued, due and not held by a live claim."""
        with self._db.unit_of_work() as uow:
            c = _deliveries.c  # a Core UPDATE: the ORM's bulk path costs more than the statement
            won = list(
                uow.session.scalars(
                    update(_deliveries)
                    .where(
                        c.id.in_(delivery_ids),
                        c.status == Status.QUEUED,
                        or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
                        or_(c.claimed_until.is_(None), c.claimed_until < now),
                    )
                    .values(
                        claimed_by=self.owner,
                        claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                        attempts=c.attempts + 1,
                    )
                    .returning(c.id)
                )
            )
            if not won:
                return []
            rows = uow.session.execute(
                select(
                    D.id,
                    D.channel,
                    D.recipient,
                    D.attempts,
                    D.user_id,
                    Notification.id.label("notification_id"),
                    Notification.topic,
                    Notification.title,
                    Notification.body,
                    Notification.data,
                    User.username,
                )
                .join(Notification, Notification.id == D.notification_id)
                .join(User, User.id == D.user_id)
                .where(D.id.in_(won))
            ).all()
            uow.commit()
        by_id = {row.id: _Claim(row) for row in rows}
        return [by_id[delivery_id] for delivery_id in delivery_ids if delivery_id in by_id]

    def _hand_over(self, claim: _Claim) -> None:
        context = {**claim.data, "username": claim.username}
        if claim.channel == Channel.EMAIL:
            message = self.renderer.email(
                sender=self.mail_from,
                to=claim.recipient,
                message_id=self._message_id(claim.id),  # the same on every attempt: receivers can dedupe
                title=claim.title,
                body=claim.body,
                context=context,
            )
            self.mailer.send(message)
        else:
            text = self.renderer.sms(claim.title, claim.body, context)
            self.sms.send(claim.recipient, self.sms_from, text, reference=claim.id)

    def _message_id(self, delivery_id: str) -> str:
        address = parseaddr(self.mail_from)[1]  # "Credits <credits@bank.example>" -> credits@bank.example
        return f"<{delivery_id}@{address.rpartition('@')[2] or 'localhost'}>"

    def _sent(self, claims: list[_Claim]) -> list[Outcome]:
        """Record the claims' messages as sent, in one transaction (each only while its claim is ours)."""
        if not claims:
            return []
        now = utcnow()
        with self._db.unit_of_work() as uow:
            uow.session.execute(
                _MARK_SENT,
                [
                    {
                        "delivery_id": claim.id,
                        "owner": self.owner,
                        "sent_at": now,
                        "message_id": self._message_id(claim.id) if claim.channel == Channel.EMAIL else None,
                    }
                    for claim in claims
                ],
            )
            uow.commit()
        for claim in claims:
            log.info(
                "notification sent: delivery %s, %s to %s, attempt %d",
                claim.id,
                claim.channel,
                mask(claim.channel, claim.recipient),
                claim.attempts,
            )
        return [Outcome(claim.id, "sent") for claim in claims]

    def _failed(self, claim: _Claim, failure: DeliveryFailure) -> Outcome:
        error = scrub(str(failure), claim.recipient)[:500]
        final = isinstance(failure, PermanentFailure) or claim.attempts >= self.policy.max_attempts
        retry_at = None if final else utcnow() + timedelta(seconds=self.policy.delay(claim.attempts))
        with self._db.unit_of_work() as uow:
            changed = _rowcount(
                uow.session,
                update(D)
                .where(D.id == claim.id, D.claimed_by == self.owner)
                .values(
                    status=Status.FAILED if final else Status.QUEUED,
                    last_error=error,
                    next_attempt_at=retry_at,
                    claimed_by=None,
                    claimed_until=None,
                ),
            )
            if final and changed:
                uow.record(
                    DomainEvent(
                        NOTIFICATION_FAILED,
                        claim.id,
                        {
                            "delivery_id": claim.id,
                            "notification_id": claim.notification_id,
                            "user_id": claim.user_id,
                            "topic": claim.topic,
                            "channel": claim.channel,
                            "to": mask(claim.channel, claim.recipient),
                            "attempts": claim.attempts,
                            "error": error,
                            "permanent": isinstance(failure, PermanentFailure),
                        },
                        target_type="notification_delivery",
                        actor_id=None,
                    )
                )
            uow.commit()
        log.warning(
            "notification %s: delivery %s, %s to %s, attempt %d: %s",
            "failed" if final else "will be retried",
            claim.id,
            claim.channel,
            mask(claim.channel, claim.recipient),
            claim.attempts,
            error,
        )
        if retry_at is not None and self.schedule_retry is not None:
            self.schedule_retry(claim.id, retry_at)
        return Outcome(claim.id, "failed" if final else "queued", retry_at)

    # -- many ---------------------------------------------------------------------------------
    def due(self, now: datetime | None = None, limit: int = SWEEP_BATCH) -> list[str]:
        """Queued deliveries due now and not held by a live claim (lost wake-ups, retries, the
        deliveries of a worker that died), oldest first."""
        now = now or utcnow()
        with self._db.unit_of_work(write=False) as uow:
            return list(
                uow.session.scalars(
                    select(D.id)
                    .where(
                        D.status == Status.QUEUED,
                        D.next_attempt_at <= now,
                        or_(D.claimed_until.is_(None), D.claimed_until < now),
                    )
                    .order_by(D.next_attempt_at)
                    .limit(limit)
                )
            )

    def lost_wakeups(self, now: datetime | None = None) -> list[str]:
        """The sweep's share of due(): deliveries due for WAKE_GRACE_SECONDS already that this
        process has not woken within a claim's length.

        A delivery waiting its turn in a busy queue is due and unclaimed too; without both
        limits every sweep queued it again, and the duplicates (each a claim that loses) grew
        faster than the queue drained: 650 transfers left a worker busy for a minute.
        """
        now = now or utcnow()
        clock = time.monotonic()
        self._woken = {key: at for key, at in self._woken.items() if clock - at < CLAIM_SECONDS}
        lost = [key for key in self.due(now - timedelta(seconds=WAKE_GRACE_SECONDS)) if key not in self._woken]
        self._woken.update(dict.fromkeys(lost, clock))
        return lost

    def send_due(self, now: datetime | None = None) -> list[Outcome]:
        """Send every due delivery on this thread (tests, and the sweep when the queue is down)."""
        return self.send_many(self.due(now), now)

    def stalled(self, now: datetime | None = None) -> int:
        """Queued deliveries overdue by more than a claim's length: the senders are not keeping up."""
        now = now or utcnow()
        cutoff = now - timedelta(seconds=CLAIM_SECONDS)
        with self._db.unit_of_work(write=False) as uow:
            return len(
                uow.session.scalars(
                    select(D.id).where(and_(D.status == Status.QUEUED, D.next_attempt_at < cutoff)).limit(SWEEP_BATCH)
                ).all()
            )


def _rowcount(session, statement) -> int:
    """Rows an UPDATE changed (a DML statement's result is a CursorResult)."""
    result = cast(CursorResult, session.execute(statement.execution_options(synchronize_session=False)))
    return result.rowcount or 0


class _Claim:
    """What sending one delivery needs, read with its claim."""

    def __init__(self, row) -> None:
        self.id: str = row.id
        self.channel: str = row.channel
        self.recipient: str = row.recipient
        self.attempts: int = row.attempts
        self.user_id: str = row.user_id
        self.notification_id: str = row.notification_id
        self.topic: str = row.topic
        self.title: str = row.title
        self.body: str = row.body
        self.data: dict = json.loads(row.data)
        self.username: str = row.username
