"""Outgoing webhooks (API.md "Outgoing webhooks"): endpoints, deliveries, and the sender.

- The event handler only writes one delivery row per matching endpoint (unique per
  (event, endpoint)), with the body frozen, and asks for a send after commit.
- A send pass works for ONE endpoint under its lease (one worker at a time per endpoint),
  attempt by attempt: read what is due, POST it outside any transaction, record the
  outcome. A slow endpoint therefore holds one worker thread, never the other endpoints'
  deliveries, and an endpoint's deliveries are never sent twice at once.
- Failures retry on the schedule (5 s ... 10 h, CREDIT_WEBHOOK_RETRY_SCHEDULE), a 429/503's
  Retry-After pauses the endpoint for as long as asked, 410 disables it, and failing
  without a success for CREDIT_WEBHOOK_DISABLE_AFTER_SECONDS (5 days) disables it too,
  recording `webhook.endpoint_disabled`.
- Retries are wake-ups scheduled on the queue; the worker's sweep finds whatever a lost
  wake-up left due (app.events.backbone.EventBackbone.add_sweep).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.events.backbone import EventBackbone
from app.events.catalog import EventCatalog
from app.infrastructure.database import Database, UnitOfWork
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.queue import EventQueue
from app.infrastructure.tables import utcnow
from app.infrastructure.tables_integrations import WebhookDelivery, WebhookEndpoint
from app.infrastructure.webhooks import AddressGuard, Response, UnsafeUrl, WebhookSender
from app.services.errors import EndpointDisabled, Forbidden, NotFound, ValidationFailed
from app.services.integrations.signing import new_secret, signature_header
from app.services.integrations.store import insert_or_skip
from app.services.pagination import cursor_id, cursor_text, decode_cursor, encode_cursor, invalid_cursor
from app.services.principal import Principal
from app.vocabulary import EndpointStatus, WebhookDeliveryStatus, ascii_int, event_type_matches

log = logging.getLogger(__name__)

ENDPOINT_DISABLED = "webhook.endpoint_disabled"
TEST_EVENT = "webhook.test"
SEND_TASK = "webhooks.send"
ROTATION_OVERLAP = timedelta(hours=24)  # the old secret keeps signing beside the new one
LEASE_SECONDS = 60.0  # longer than one attempt (the timeout) with room to record it

_endpoints = cast(Table, WebhookEndpoint.__table__)
_deliveries = cast(Table, WebhookDelivery.__table__)
_ADMIN_ONLY = "only an admin may manage webhook endpoints"


@dataclass(frozen=True)
class WebhookPolicy:
    """How long to wait after each failure, and how long an endpoint may fail before it is disabled."""

    schedule: tuple[float, ...]
    disable_after: timedelta

    @classmethod
    def of(cls, retry_schedule: str, disable_after_seconds: float) -> WebhookPolicy:
        delays = tuple(float(part) for part in retry_schedule.split(",") if part.strip())
        return cls(delays, timedelta(seconds=disable_after_seconds))


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def endpoint_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "event_types": json.loads(row.event_types),
        "description": row.description,
        "status": row.status,
        "created_at": row.created_at,
        "disabled_reason": row.disabled_reason,
    }


def delivery_view(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "next_attempt_at": row.next_attempt_at,
        "created_at": row.created_at,
    }


def _wanted(event_types: list[str], event_type: str) -> bool:
    return not event_types or any(event_type_matches(pattern, event_type) for pattern in event_types)


class WebhookService:
    def __init__(
        self,
        database: Database,
        queue: EventQueue,
        catalog: EventCatalog,
        backbone: EventBackbone,
        guard: AddressGuard,
        sender: WebhookSender,
        policy: WebhookPolicy,
    ) -> None:
        self._db, self._queue, self._catalog, self._backbone = database, queue, catalog, backbone
        self._guard, self._sender, self.policy = guard, sender, policy
        queue.when_built(self._register_tasks)

    def _register_tasks(self, huey) -> None:
        self._send_task = huey.task(name=SEND_TASK)(self.send_endpoint)

    # -- endpoints (admin) --------------------------------------------------------------------
    def create_endpoint(
        self, actor: Principal, url: str, event_types: list[str] | None, description: str | None
    ) -> dict[str, Any]:
        _require_admin(actor)
        self._check_url(url)
        types = self._check_types(event_types or [])
        now = utcnow()
        row = {
            "id": str(uuid.uuid4()),
            "url": url,
            "event_types": json.dumps(types),
            "description": description,
            "status": EndpointStatus.ACTIVE.value,
            "disabled_reason": None,
            "secret": new_secret(),
            "created_at": now,
            "updated_at": now,
        }
        with self._db.unit_of_work() as uow:
            uow.session.execute(_endpoints.insert().values(row))
            uow.commit()
        return {**endpoint_view(_Row(row)), "secret": row["secret"]}

    def endpoints(self, actor: Principal, limit: int, cursor: str | None) -> Page:
        _require_reader(actor)
        after = decode_cursor(cursor, 2)
        query = select(_endpoints).order_by(_endpoints.c.created_at.desc(), _endpoints.c.id.desc())
        if after:
            created, last_id = _cursor_time(after[0]), cursor_text(after[1])
            query = query.where(
                or_(
                    _endpoints.c.created_at < created,
                    and_(_endpoints.c.created_at == created, _endpoints.c.id < last_id),
                )
            )
        with self._db.unit_of_work(write=False) as uow:
            rows = uow.session.execute(query.limit(limit + 1)).all()
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
        return Page([endpoint_view(row) for row in rows], next_cursor)

    def endpoint(self, actor: Principal, endpoint_id: str) -> dict[str, Any]:
        _require_reader(actor)
        with self._db.unit_of_work(write=False) as uow:
            return endpoint_view(self._endpoint_row(uow.session, endpoint_id))

    def update_endpoint(self, actor: Principal, endpoint_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        _require_admin(actor)
        values: dict[str, Any] = {}
        if changes.get("url") is not None:
            self._check_url(changes["url"])
            values["url"] = changes["url"]
        if changes.get("event_types") is not None:
            values["event_types"] = json.dumps(self._check_types(changes["event_types"]))
        if "description" in changes:
            values["description"] = changes["description"]
        now = utcnow()
        with self._db.unit_of_work() as uow:
            row = self._endpoint_row(uow.session, endpoint_id, lock=True)
            status = changes.get("status")
            if status == EndpointStatus.DISABLED and row.status != EndpointStatus.DISABLED:
                self._disable(uow, row, "disabled by an admin", now, actor_id=actor.user_id)
            elif status == EndpointStatus.ACTIVE and row.status != EndpointStatus.ACTIVE:
                values.update(
                    status=EndpointStatus.ACTIVE.value, disabled_reason=None, failing_since=None, paused_until=None
                )
            if values:
                uow.session.execute(
                    update(_endpoints).where(_endpoints.c.id == row.id).values(updated_at=now, **values)
                )
            uow.commit()
        with self._db.unit_of_work(write=False) as uow:
            return endpoint_view(self._endpoint_row(uow.session, endpoint_id))

    def delete_endpoint(self, actor: Principal, endpoint_id: str) -> None:
        _require_admin(actor)
        with self._db.unit_of_work() as uow:
            row = self._endpoint_row(uow.session, endpoint_id, lock=True)
            # Its deliveries go with it (SQLite enforces no ON DELETE CASCADE by default).
            uow.session.execute(delete(_deliveries).where(_deliveries.c.endpoint_id == row.id))
            uow.session.execute(delete(_endpoints).where(_endpoints.c.id == row.id))
            uow.commit()

    def rotate_secret(self, actor: Principal, endpoint_id: str) -> dict[str, str]:
        """A new secret; the current one keeps signing beside it for ROTATION_OVERLAP."""
        _require_admin(actor)
        secret, now = new_secret(), utcnow()
        with self._db.unit_of_work() as uow:
            row = self._endpoint_row(uow.session, endpoint_id, lock=True)
            uow.session.execute(
                update(_endpoints)
                .where(_endpoints.c.id == row.id)
                .values(
                    secret=secret,
                    previous_secret=row.secret,
                    previous_secret_expires_at=now + ROTATION_OVERLAP,
                    updated_at=now,
                )
            )
            uow.commit()
        return {"secret": secret}

    def send_test(self, actor: Principal, endpoint_id: str) -> dict[str, Any]:
        """A `webhook.test` message to this endpoint alone, sent like any delivery."""
        _require_admin(actor)
        now, event_id = utcnow(), str(uuid.uuid4())
        event = {
            "id": event_id,
            "sequence": None,
            "type": TEST_EVENT,
            "occurred_at": now.isoformat(),
            "actor": {"type": "user", "id": actor.user_id},
            "request_id": None,
            "data": {"endpoint_id": endpoint_id, "message": "a test event sent by an admin"},
        }
        with self._db.unit_of_work() as uow:
            row = self._endpoint_row(uow.session, endpoint_id)
            if row.status != EndpointStatus.ACTIVE:
                raise EndpointDisabled()
            uow.session.execute(_deliveries.insert().values(self._delivery_row(row.id, event, now)))
            uow.after_commit(lambda: self._wake_now(endpoint_id))
            uow.commit()
        return self._delivery_by_event(endpoint_id, event_id)

    # -- the delivery log (admin) ---------------------------------------------------------------
    def deliveries(
        self, actor: Principal, endpoint_id: str, status: str | None, limit: int, cursor: str | None
    ) -> Page:
        _require_reader(actor)
        after = decode_cursor(cursor, 1)
        query = select(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id)
        if status:
            query = query.where(_deliveries.c.status == status)
        if after:
            query = query.where(_deliveries.c.id < cursor_id(after[0]))
        with self._db.unit_of_work(write=False) as uow:
            self._endpoint_row(uow.session, endpoint_id)
            rows = uow.session.execute(query.order_by(_deliveries.c.id.desc()).limit(limit + 1)).all()
        more, rows = len(rows) > limit, rows[:limit]
        return Page([delivery_view(row) for row in rows], encode_cursor(rows[-1].id) if more and rows else None)

    def retry(self, actor: Principal, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again now, whatever its state, with a fresh retry schedule."""
        _require_admin(actor)
        number = ascii_int(delivery_id)
        if number is None:
            raise NotFound("no such delivery")
        now = utcnow()
        with self._db.unit_of_work() as uow:
            row = uow.session.execute(
                select(_deliveries, _endpoints.c.status.label("endpoint_status"))
                .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
                .where(_deliveries.c.id == number)
            ).first()
            if row is None:
                raise NotFound("no such delivery")
            if row.endpoint_status != EndpointStatus.ACTIVE:
                raise EndpointDisabled()
            uow.session.execute(
                update(_deliveries)
                .where(_deliveries.c.id == row.id)
                .values(status=WebhookDeliveryStatus.PENDING.value, retry_step=0, next_attempt_at=now, updated_at=now)
            )
            endpoint_id = row.endpoint_id
            uow.after_commit(lambda: self._wake_now(endpoint_id))
            uow.commit()
        with self._db.unit_of_work(write=False) as uow:
            return delivery_view(uow.session.execute(select(_deliveries).where(_deliveries.c.id == row.id)).one())

    # -- the event handler: rows only, no I/O -------------------------------------------------------
    def handle_events(self, uow: UnitOfWork, events: list[Any]) -> None:
        """One pending delivery per active endpoint that wants the event and existed when it
        occurred; a second delivery of the same event adds nothing (unique (event, endpoint)).
        The endpoints are read once per batch, and the rows go in one INSERT."""
        endpoints = [
            (row.id, json.loads(row.event_types), row.created_at)
            for row in uow.session.execute(
                select(_endpoints.c.id, _endpoints.c.event_types, _endpoints.c.created_at).where(
                    _endpoints.c.status == EndpointStatus.ACTIVE
                )
            )
        ]
        if not endpoints:
            return
        now = utcnow()
        rows: list[dict[str, Any]] = []
        woken: set[str] = set()
        for event in events:
            wanted = [
                id_ for id_, types, created in endpoints if created <= event.occurred_at and _wanted(types, event.type)
            ]
            if wanted:
                public = event.public()
                rows.extend(self._delivery_row(endpoint_id, public, now) for endpoint_id in wanted)
                woken.update(wanted)
        if rows:
            insert_or_skip(uow.session, _deliveries, rows, "event_id", "endpoint_id")
            uow.after_commit(lambda: self._wake_now(*sorted(woken)))

    @staticmethod
    def _delivery_row(endpoint_id: str, event: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "endpoint_id": endpoint_id,
            "event_id": event["id"],
            "event_type": event["type"],
            "payload": json.dumps(event, separators=(",", ":")),
            "status": WebhookDeliveryStatus.PENDING.value,
            "attempts": 0,
            "retry_step": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }

    # -- sending ----------------------------------------------------------------------------------
    def wake(self, endpoint_id: str, delay: float = 0.0) -> bool:
        """Ask a worker to send what is due to this endpoint (after `delay` seconds); False
        when the queue is down (the sweep sends it later)."""
        try:
            self._queue.huey  # noqa: B018 - builds it (and registers the task) on first use
            if delay > 0:
                if not self._queue.immediate:  # the immediate queue cannot wait: the sweep will do
                    self._send_task.schedule((endpoint_id,), delay=delay)
            else:
                self._send_task(endpoint_id)
            return True
        except Exception as exc:  # the queue is down: the worker's sweep sends what is due
            log.warning("queue unavailable (%s): webhooks wait for the sweep", type(exc).__name__)
            return False

    def _wake_now(self, *endpoint_ids: str) -> None:
        for endpoint_id in endpoint_ids:
            self.wake(endpoint_id)

    def sweep(self) -> None:
        """Wake every active endpoint with something due that no worker holds (a lost wake-up,
        a retry falling due); send it here when the queue is down."""
        now = utcnow()
        with self._db.unit_of_work(write=False) as uow:
            due = uow.session.scalars(
                select(_deliveries.c.endpoint_id)
                .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
                .where(
                    _deliveries.c.status == WebhookDeliveryStatus.PENDING,
                    _deliveries.c.next_attempt_at <= now,
                    _endpoints.c.status == EndpointStatus.ACTIVE,
                    or_(_endpoints.c.paused_until.is_(None), _endpoints.c.paused_until <= now),
                    or_(_endpoints.c.lease_until.is_(None), _endpoints.c.lease_until < now),
                )
                .distinct()
            ).all()
        for endpoint_id in due:
            if not self.wake(endpoint_id):
                self.send_endpoint(endpoint_id)

    def send_endpoint(self, endpoint_id: str) -> int:
        """Send what is due to one endpoint, one delivery at a time, under its lease; how many
        attempts were made. Returns at once when another worker holds the endpoint."""
        attempts = 0
        while True:
            owner = uuid.uuid4().hex
            if not self._take_lease(endpoint_id, owner):
                return attempts
            try:
                while not self._backbone.stopping.is_set():
                    due = self._next_due(endpoint_id)
                    if due is None:
                        break
                    self._attempt(*due)
                    attempts += 1
                    self._take_lease(endpoint_id, owner)  # renewed
            finally:
                self._release_lease(endpoint_id, owner)
            # A wake-up that came while this pass held the lease found it taken and left:
            # look once more, now that the lease is free.
            if self._backbone.stopping.is_set() or self._next_due(endpoint_id) is None:
                return attempts

    def _take_lease(self, endpoint_id: str, owner: str) -> bool:
        now = utcnow()
        with self._db.unit_of_work() as uow:
            taken = uow.session.execute(
                update(_endpoints)
                .where(
                    _endpoints.c.id == endpoint_id,
                    or_(
                        _endpoints.c.lease_until.is_(None),
                        _endpoints.c.lease_until < now,
                        _endpoints.c.lease_owner == owner,
                    ),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=LEASE_SECONDS))
            )
            uow.commit()
        return bool(getattr(taken, "rowcount", 0))

    def _release_lease(self, endpoint_id: str, owner: str) -> None:
        try:
            with self._db.unit_of_work() as uow:
                uow.session.execute(
                    update(_endpoints)
                    .where(_endpoints.c.id == endpoint_id, _endpoints.c.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None)
                )
                uow.commit()
        except Exception:  # the lease expires by itself
            log.warning("releasing the lease of webhook endpoint %s failed", endpoint_id, exc_info=True)

    def _next_due(self, endpoint_id: str) -> tuple[Any, Any] | None:
        """(endpoint, delivery) of the oldest due delivery, or None: nothing due, the
        endpoint gone, disabled or paused by a Retry-After."""
        now = utcnow()
        with self._db.unit_of_work(write=False) as uow:
            endpoint = uow.session.execute(select(_endpoints).where(_endpoints.c.id == endpoint_id)).first()
            if endpoint is None or endpoint.status != EndpointStatus.ACTIVE:
                return None
            if endpoint.paused_until is not None and endpoint.paused_until > now:
                return None
            delivery = uow.session.execute(
                select(_deliveries)
                .where(
                    _deliveries.c.endpoint_id == endpoint_id,
                    _deliveries.c.status == WebhookDeliveryStatus.PENDING,
                    _deliveries.c.next_attempt_at <= now,
                )
                .order_by(_deliveries.c.id)
                .limit(1)
            ).first()
        return None if delivery is None else (endpoint, delivery)

    def _attempt(self, endpoint: Any, delivery: Any) -> None:
        """One POST, outside any transaction, then its outcome recorded."""
        try:
            target = self._guard.check(endpoint.url)
        except UnsafeUrl as exc:
            response = Response(None, f"refused by the address check: {exc}")
        else:
            timestamp = int(time.time())
            headers = {
                "webhook-id": delivery.event_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(
                    self._valid_secrets(endpoint), delivery.event_id, timestamp, delivery.payload
                ),
            }
            response = self._sender.post(target, delivery.payload.encode(), headers)
        retry_in = self._record(endpoint.id, delivery.id, response)
        if retry_in is not None:
            self.wake(endpoint.id, delay=retry_in)

    @staticmethod
    def _valid_secrets(endpoint: Any) -> list[str]:
        secrets_ = [endpoint.secret]
        if (
            endpoint.previous_secret
            and endpoint.previous_secret_expires_at
            and endpoint.previous_secret_expires_at > utcnow()
        ):
            secrets_.append(endpoint.previous_secret)
        return secrets_

    def _record(self, endpoint_id: str, delivery_id: int, response: Response) -> float | None:
        """Record an attempt; seconds until the next one, or None when there is none."""
        now = utcnow()
        with self._db.unit_of_work() as uow:
            session = uow.session
            endpoint = session.execute(
                select(_endpoints).where(_endpoints.c.id == endpoint_id).with_for_update(key_share=True)
            ).first()
            delivery = session.execute(select(_deliveries).where(_deliveries.c.id == delivery_id)).first()
            if endpoint is None or delivery is None:
                return None  # deleted meanwhile
            values: dict[str, Any] = {
                "attempts": delivery.attempts + 1,
                "last_status_code": response.status_code,
                "last_error": response.error[:1000] if response.error else None,
                "updated_at": now,
            }
            retry_in: float | None = None
            if response.succeeded:
                values.update(status=WebhookDeliveryStatus.SUCCEEDED.value, next_attempt_at=None)
                if endpoint.failing_since is not None or endpoint.paused_until is not None:
                    session.execute(
                        update(_endpoints)
                        .where(_endpoints.c.id == endpoint_id)
                        .values(failing_since=None, paused_until=None)
                    )
            else:
                step = delivery.retry_step + 1
                failing_since = endpoint.failing_since or now
                if response.status_code == 410:
                    values.update(status=WebhookDeliveryStatus.FAILED.value, next_attempt_at=None, retry_step=step)
                    session.execute(update(_deliveries).where(_deliveries.c.id == delivery_id).values(values))
                    self._disable(uow, endpoint, "the endpoint answered 410 Gone", now)
                    uow.commit()
                    return None
                if step > len(self.policy.schedule):
                    values.update(status=WebhookDeliveryStatus.FAILED.value, next_attempt_at=None, retry_step=step)
                else:
                    retry_in = self.policy.schedule[step - 1]
                    if response.retry_after is not None:
                        retry_in = response.retry_after
                    values.update(next_attempt_at=now + timedelta(seconds=retry_in), retry_step=step)
                endpoint_values: dict[str, Any] = {"failing_since": failing_since}
                if response.retry_after is not None:
                    endpoint_values["paused_until"] = now + timedelta(seconds=response.retry_after)
                session.execute(update(_endpoints).where(_endpoints.c.id == endpoint_id).values(endpoint_values))
                if now - failing_since >= self.policy.disable_after:
                    values.update(status=WebhookDeliveryStatus.FAILED.value, next_attempt_at=None)
                    session.execute(update(_deliveries).where(_deliveries.c.id == delivery_id).values(values))
                    since = failing_since.isoformat(timespec="seconds")
                    self._disable(uow, endpoint, f"failing without a success since {since}", now)
                    uow.commit()
                    return None
            session.execute(update(_deliveries).where(_deliveries.c.id == delivery_id).values(values))
            uow.commit()
        return retry_in

    def _disable(self, uow: UnitOfWork, endpoint: Any, reason: str, now: datetime, actor_id: str | None = None) -> None:
        """Disable an endpoint, fail what it still owed (an admin may retry those once it is
        enabled again), and record `webhook.endpoint_disabled`."""
        session = uow.session
        session.execute(
            update(_endpoints)
            .where(_endpoints.c.id == endpoint.id)
            .values(status=EndpointStatus.DISABLED.value, disabled_reason=reason, updated_at=now)
        )
        session.execute(
            update(_deliveries)
            .where(_deliveries.c.endpoint_id == endpoint.id, _deliveries.c.status == WebhookDeliveryStatus.PENDING)
            .values(
                status=WebhookDeliveryStatus.FAILED.value,
                next_attempt_at=None,
                last_error=f"endpoint disabled: {reason}"[:1000],
                updated_at=now,
            )
        )
        view = {**endpoint_view(endpoint), "status": EndpointStatus.DISABLED.value, "disabled_reason": reason}
        view["created_at"] = view["created_at"].isoformat()
        uow.record(
            DomainEvent(
                ENDPOINT_DISABLED,
                endpoint.id,
                {"endpoint": view, "reason": reason},
                target_type="webhook_endpoint",
                actor_id=actor_id,
            )
        )

    # -- helpers ------------------------------------------------------------------------------------
    def _check_url(self, url: str) -> None:
        try:
            self._guard.check(url)
        except UnsafeUrl as exc:
            raise ValidationFailed.field("url", str(exc)) from None

    def _check_types(self, event_types: list[str]) -> list[str]:
        known = [event_type for event_type, _ in self._catalog.types()]
        unknown = [
            pattern
            for pattern in event_types
            if pattern != "*" and not any(event_type_matches(pattern, event_type) for event_type in known)
        ]
        if unknown:
            raise ValidationFailed.field(
                "event_types", f"unknown event types: {', '.join(unknown)} (GET /events/types lists them)"
            )
        return list(dict.fromkeys(event_types))

    @staticmethod
    def _endpoint_row(session: Session, endpoint_id: str, lock: bool = False) -> Any:
        query = select(_endpoints).where(_endpoints.c.id == endpoint_id)
        # FOR NO KEY UPDATE: deliveries being inserted for it (their foreign key) need not wait.
        row = session.execute(query.with_for_update(key_share=True) if lock else query).first()
        if row is None:
            raise NotFound("no such webhook endpoint")
        return row

    def _delivery_by_event(self, endpoint_id: str, event_id: str) -> dict[str, Any]:
        with self._db.unit_of_work(write=False) as uow:
            row = uow.session.execute(
                select(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id, _deliveries.c.event_id == event_id)
            ).one()
        return delivery_view(row)

    def close(self) -> None:
        self._sender.close()

    # -- health -------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._db.unit_of_work(write=False) as uow:
            # Pending rows only: the partial index holds them; the log of sent ones only grows.
            pending = uow.session.scalar(
                select(func.count())
                .select_from(_deliveries)
                .where(_deliveries.c.status == WebhookDeliveryStatus.PENDING)
            )
            disabled = uow.session.scalar(
                select(func.count()).select_from(_endpoints).where(_endpoints.c.status == EndpointStatus.DISABLED)
            )
        return {
            "deliveries_pending": int(pending or 0),
            "endpoints_disabled": int(disabled or 0),
        }


class _Row:
    """A dict read like a result row (endpoint_view of a row just inserted)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _require_admin(actor: Principal) -> None:
    if not actor.may_act_for():
        raise Forbidden(_ADMIN_ONLY)


def _require_reader(actor: Principal) -> None:
    if not actor.may_act_for(read=True):
        raise Forbidden("reading webhook endpoints needs an admin")


def _cursor_time(value: Any) -> datetime:
    text = cursor_text(value)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise invalid_cursor() from None
