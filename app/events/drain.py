"""Draining a module: its owed deliveries, in sequence order, handled in its own transactions.

One worker drains one module at a time (the module's lease); different modules drain in
parallel. A batch is ONE transaction: the handlers' effects and the deliveries' "done"
commit together, so the effect happens exactly once per (event, module) however often a
delivery is attempted.

A batch first goes at once: a module's `handle_events(uow, events)` when it writes a batch
together, else its `handle_event` per event, no SAVEPOINTs. If a handler raises, that
transaction is rolled back and the same deliveries go again carefully: a SAVEPOINT per event,
so a handler that raises is rolled back alone; its delivery is `failed` with a retry
scheduled (backoff with jitter) and the module stops there until then, so its order holds
(head of line). Out of attempts it is `dead`, and draining goes on past it. Failures are
rare, so the common batch pays no SAVEPOINT round trips.
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
from app.events.catalog import BatchHandler, EventCatalog, Handler
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
    raised: bool = False  # a handler raised in a batch handled at once: go again, one by one


@dataclass(frozen=True)
class _Handlers:
    one: Handler  # handle_event(uow, event)
    many: BatchHandler | None  # handle_events(uow, events), when the module writes a batch together


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
        one = self._catalog.handler(name)
        if one is None:  # the module is not running in this process
            return None
        handlers = _Handlers(one, self._catalog.batch_handler(name))
        careful = False
        while True:
            batch = self._batch(name, handlers, retry_failed, careful)
            careful = batch.raised  # the next batch is this one again, one event at a time
            if batch.raised:
                continue
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

    def _batch(self, name: str, handlers: _Handlers, retry_failed: bool, careful: bool) -> _Batch:
        policy, now = self._policy, self._clock()
        batch = _Batch()
        with self._db.unit_of_work() as uow:
            session = uow.session
            if not store.take_lease(session, name, self.owner, now, now + timedelta(seconds=policy.lease_seconds)):
                batch.lease_held = False
                return batch
            owed = store.owed(session, name, policy.batch_size)
            due, batch.blocked_until = _due_prefix(owed, now, retry_failed)
            if careful:
                done, blocked, out_of_time = self._one_by_one(uow, name, handlers, due, now)
                batch.blocked_until = blocked or batch.blocked_until
            else:
                try:
                    done, out_of_time = self._at_once(uow, name, handlers, due)
                except Exception:  # some handler raised: find which, one by one
                    # A warning: a batch that fails where its events one by one do not is a bug
                    # in the module's handle_events, and it costs the batch its speed.
                    log.warning(
                        "module %s: a batch of %d raised; handling it one event at a time",
                        name,
                        len(due),
                        exc_info=True,
                    )
                    uow.rollback()
                    batch.raised = True
                    return batch
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

    def _at_once(self, uow, name: str, handlers: _Handlers, due: list[store.Due]) -> tuple[list[int], bool]:
        """Every due delivery in the batch's transaction, no SAVEPOINTs: (done ids, out of time)."""
        events = [Event.from_row(d.event) for d in due]
        began = time.perf_counter()
        if handlers.many is not None:
            if events:
                handlers.many(uow, events)
                each = (time.perf_counter() - began) / len(events)
                for _ in events:
                    self._observer.handler_duration(name, each)
            return [d.id for d in due], False
        done: list[int] = []
        for delivery, event in zip(due, events, strict=True):
            started = time.perf_counter()
            # What a handler records (a module's own events) carries the request id it follows.
            with acting(EventContext(request_id=event.request_id)):
                handlers.one(uow, event)
            self._observer.handler_duration(name, time.perf_counter() - started)
            done.append(delivery.id)
            if time.perf_counter() - began > self._policy.batch_seconds:
                return done, True
        return done, False

    def _one_by_one(
        self, uow, name: str, handlers: _Handlers, due: list[store.Due], now: datetime
    ) -> tuple[list[int], datetime | None, bool]:
        """Each due delivery under its own SAVEPOINT: (done ids, blocked until, out of time)."""
        done: list[int] = []
        began = time.perf_counter()
        for delivery in due:
            event = Event.from_row(delivery.event)
            started = time.perf_counter()
            try:
                with acting(EventContext(request_id=event.request_id)), uow.savepoint():
                    if handlers.many is not None:
                        handlers.many(uow, [event])
                    else:
                        handlers.one(uow, event)
            except Exception as exc:  # a module's failure stays its own
                self._observer.handler_duration(name, time.perf_counter() - started)
                retry_at = self._failed(uow, name, delivery, event, exc, now)
                if retry_at is not None:
                    return done, retry_at, False
                continue
            self._observer.handler_duration(name, time.perf_counter() - started)
            done.append(delivery.id)
            if time.perf_counter() - began > self._policy.batch_seconds:
                return done, None, True
        return done, None, False

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


def _due_prefix(owed: list[store.Due], now: datetime, retry_failed: bool) -> tuple[list[store.Due], datetime | None]:
    """The owed deliveries up to a failed head still waiting for its retry (and when that is due)."""
    for index, delivery in enumerate(owed):
        waiting = delivery.status == DeliveryStatus.FAILED and not retry_failed
        if waiting and (delivery.next_attempt_at or now) > now:
            return owed[:index], delivery.next_attempt_at
    return owed, None


def is_due(head: tuple[str, datetime | None] | None, now: datetime, retry_failed: bool = False) -> bool:
    """Whether a module's first owed delivery (store.head) may be attempted now."""
    if head is None:
        return False
    status, next_at = head
    return status == DeliveryStatus.PENDING or retry_failed or next_at is None or next_at <= now
