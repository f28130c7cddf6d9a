"""Draining a module: its owed deliveries, in sequence order, handled in its own transactions.

One worker drains one module at a time (the module's lease); different modules drain in
parallel. A batch is ONE transaction with a SAVEPOINT per event: the handler's effect and
its delivery's "done" commit together, so the effect happens exactly once per (event,
module) however often a delivery is attempted. A handler that raises is rolled back to its
savepoint alone; its delivery is `failed` with a retry scheduled (backoff with jitter) and
the module stops there until then, so its order holds (head of line). Out of attempts it
is `dead`, and draining goes on past it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from app.events import store
from app.events.catalog import EventCatalog, Handler
from app.events.envelope import Event
from app.events.policy import EventPolicy
from app.infrastructure.database import Database
from app.infrastructure.outbox import EventContext, acting
from app.infrastructure.tables import utcnow
from app.vocabulary import DeliveryStatus

log = logging.getLogger(__name__)


class DeliveryObserver(Protocol):
    """Where outcomes and handler durations are counted (app.observability.metrics.Metrics)."""

    def delivery_outcome(self, module: str, outcome: str, count: int = 1) -> None: ...
    def handler_duration(self, module: str, seconds: float) -> None: ...


class _NoObserver:
    def delivery_outcome(self, module: str, outcome: str, count: int = 1) -> None:
        pass

    def handler_duration(self, module: str, seconds: float) -> None:
        pass


@dataclass
class _Batch:
    lease_held: bool = True  # False: another worker holds the module's lease
    handled: int = 0
    full: bool = False  # more may be owed: go on with another batch
    blocked_until: datetime | None = None  # the head failed; its retry is due then
    lost: bool = False  # another worker handled some of these meanwhile: ours was undone


class Drainer:
    def __init__(
        self,
        database: Database,
        catalog: EventCatalog,
        policy: EventPolicy,
        owner: str,
        observer: DeliveryObserver | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db, self._catalog, self._policy, self.owner = database, catalog, policy, owner
        self._observer = observer or _NoObserver()
        self._clock = clock

    def drain(self, name: str, stopping: threading.Event, retry_failed: bool = False) -> datetime | None:
        """Handle what `name` owes until nothing is due, the lease is another's, or stopping
        is set (the batch in hand finishes first). When the head is waiting for a retry: when.

        retry_failed: treat a failed head as due now (tests, an operator's nudge).
        """
        handler = self._catalog.handler(name)
        if handler is None:  # the module is not running in this process
            return None
        while True:
            batch = self._batch(name, handler, retry_failed)
            if not batch.lease_held or batch.lost:
                return None
            if batch.blocked_until is not None:
                return batch.blocked_until
            if stopping.is_set():
                self._release(name)
                return None
            if batch.full:
                continue
            # The lease was released with the batch. A delivery committed meanwhile was seen
            # by nobody (its drain found the lease still taken): look once more, now.
            if not self._due(name, retry_failed):
                return None

    def _batch(self, name: str, handler: Handler, retry_failed: bool) -> _Batch:
        policy, now = self._policy, self._clock()
        batch = _Batch()
        with self._db.unit_of_work() as uow:
            session = uow.session
            if not store.take_lease(session, name, self.owner, now, now + timedelta(seconds=policy.lease_seconds)):
                batch.lease_held = False
                return batch
            owed = store.owed(session, name, policy.batch_size)
            done: list[int] = []
            started, out_of_time = time.monotonic(), False
            for due in owed:
                if due.status == DeliveryStatus.FAILED and not retry_failed and (due.next_attempt_at or now) > now:
                    batch.blocked_until = due.next_attempt_at
                    break
                event = Event.from_row(due.event)
                began = time.perf_counter()
                try:
                    # What a handler records (a module's own events) carries the request id it follows.
                    with acting(EventContext(request_id=event.request_id)), uow.savepoint():
                        handler(uow, event)
                except Exception as exc:  # a module's failure stays its own
                    self._observer.handler_duration(name, time.perf_counter() - began)
                    retry_at = self._failed(uow, name, due, event, exc, now)
                    if retry_at is not None:
                        batch.blocked_until = retry_at
                        break
                    continue
                self._observer.handler_duration(name, time.perf_counter() - began)
                done.append(due.id)
                if time.monotonic() - started > policy.batch_seconds:
                    out_of_time = True
                    break
            batch.full = batch.blocked_until is None and (out_of_time or len(owed) == policy.batch_size)
            if store.mark_done(session, done, now) != len(done):
                # Another worker handled some of these (this batch outlived its lease): undo ours.
                uow.rollback()
                batch.lost = True
                log.warning("module %s: deliveries handled elsewhere meanwhile; this batch was undone", name)
                return batch
            if not batch.full:
                store.release_lease(session, name, self.owner)
            uow.commit()
        batch.handled = len(done)
        if done:
            self._observer.delivery_outcome(name, DeliveryStatus.DONE, len(done))
        return batch

    def _failed(self, uow, name: str, due: store.Due, event: Event, exc: Exception, now: datetime) -> datetime | None:
        """Record a failed attempt; when its retry is due (the module waits for it), or None: dead."""
        attempts = due.attempts + 1
        next_at = self._policy.next_attempt(attempts, now)
        status = DeliveryStatus.FAILED if next_at is not None else DeliveryStatus.DEAD
        error = f"{type(exc).__name__}: {exc}"
        store.mark_failed(uow.session, due.id, status, attempts, error, next_at, now)
        self._observer.delivery_outcome(name, status)
        log.warning(
            "module %s failed to handle %s %s (attempt %d): %s%s",
            name,
            event.type,
            event.id,
            attempts,
            error[:200],
            "; dead" if next_at is None else f"; retry at {next_at.isoformat()}",
        )
        return next_at

    def _release(self, name: str) -> None:
        with self._db.unit_of_work() as uow:
            store.release_lease(uow.session, name, self.owner)
            uow.commit()

    def _due(self, name: str, retry_failed: bool) -> bool:
        with self._db.unit_of_work(write=False) as uow:
            first = store.head(uow.session, name)
        return is_due(first, self._clock(), retry_failed)


def is_due(head: tuple[str, datetime | None] | None, now: datetime, retry_failed: bool = False) -> bool:
    """Whether a module's first owed delivery (store.head) may be attempted now."""
    if head is None:
        return False
    status, next_at = head
    return status == DeliveryStatus.PENDING or retry_failed or next_at is None or next_at <= now
