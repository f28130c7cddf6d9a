"""The event backbone of one process: wakes the relay after commits, runs the queue's tasks,
sweeps, and answers the health and metrics questions about deliveries.

The queue (huey) carries two wake-ups: "relay" and "drain module M". Neither carries data,
and each may be lost (a killed worker, a restarted Redis) or repeated (several processes,
a sweep) without harm: the outbox and the delivery rows are the truth, the relay lock and
the modules' leases keep repeats apart, and a worker's sweep finds whatever a lost wake-up
left behind. docs/events.md tells the whole story.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from app.events import store
from app.events.catalog import EventCatalog
from app.events.drain import DeliveryObserver, Drainer, is_due
from app.events.policy import EventPolicy
from app.events.relay import Relay
from app.infrastructure.database import Database
from app.infrastructure.queue import EventQueue
from app.infrastructure.tables import utcnow

log = logging.getLogger(__name__)

RELAY_TASK, DRAIN_TASK = "events.relay", "events.drain"
_QUIET_SECONDS = 30.0  # how often a still-failing queue is logged again


class EventBackbone:
    def __init__(
        self,
        database: Database,
        queue: EventQueue,
        catalog: EventCatalog,
        policy: EventPolicy,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.queue, self.catalog, self.policy = queue, catalog, policy
        self._db = database
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.relay = Relay(database, catalog, policy)
        self.drainer = Drainer(database, catalog, policy, self.owner, observer)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._relaying = False
        self._relay_again = False
        self._draining: set[str] = set()
        self._drain_again: set[str] = set()
        self._pulled = threading.Event()
        self._trigger: threading.Thread | None = None
        self._queue_failed_at = 0.0
        self._sweeps: list[Callable[[], None]] = []
        queue.when_built(self._register_tasks)
        database.on_events_committed(self.pull)

    def _register_tasks(self, huey) -> None:
        self._relay_task = huey.task(name=RELAY_TASK)(self.relay_now)
        self._drain_task = huey.task(name=DRAIN_TASK)(self.drain_now)

    # -- after a commit ------------------------------------------------------------------
    def pull(self) -> None:
        """Events were committed: wake the relay, without adding to the committer's latency.

        With a real queue a daemon thread coalesces pulls and enqueues one relay task per
        `relay_delay_seconds` at most while events flow, and on Redis one per that delay
        across every process (first_to_ask): each wake-up costs a relay pass and a drain of
        every subscribing module, so four servers each waking the relay cost the worker
        four times the work for the same events. With the immediate queue (memory://, tests)
        the relay and the drains run now, on this thread, after the commit.
        """
        if self.stopping.is_set():
            return
        if self.queue.immediate:
            self._guarded(self.relay_now)
            return
        self._pulled.set()
        if self._trigger is None:
            with self._lock:
                if self._trigger is None:
                    self._trigger = threading.Thread(target=self._trigger_loop, name="events-trigger", daemon=True)
                    self._trigger.start()

    def _trigger_loop(self) -> None:
        while not self.stopping.is_set():
            if not self._pulled.wait(timeout=1.0):
                continue
            self._pulled.clear()
            if self._relay_asked_elsewhere():
                # That wake-up's relay may run before our commit was visible: ask again
                # after the delay, when its mark has expired (it then covers ours too).
                self._pulled.set()
            else:
                self.enqueue_relay()
            self.stopping.wait(self.policy.relay_delay_seconds)

    def _relay_asked_elsewhere(self) -> bool:
        try:
            return not self.queue.first_to_ask(RELAY_TASK, self.policy.relay_delay_seconds)
        except Exception:  # the queue is down: enqueue_relay says so, and the sweep catches up
            return False

    # -- wake-ups -------------------------------------------------------------------------
    def enqueue_relay(self) -> bool:
        """Ask some worker for a relay pass; False when the queue is down (the events wait)."""
        return self._enqueue(lambda: self.queue.huey.enqueue(self._relay_task.s()))

    def wake(self, name: str) -> bool:
        """Ask some worker to drain module `name`; False when the queue is down."""
        return self._enqueue(lambda: self.queue.huey.enqueue(self._drain_task.s(name)))

    def wake_at(self, name: str, when: datetime) -> bool:
        """Drain `name` again at `when` (a retry falling due)."""
        delay = max((when - utcnow()).total_seconds(), 0.0)
        return self._enqueue(lambda: self._drain_task.schedule((name,), delay=delay))

    def _enqueue(self, send) -> bool:
        try:
            self.queue.huey  # noqa: B018 - builds it (and registers the tasks) on first use
            send()
            return True
        except Exception as exc:
            now = time.monotonic()
            if now - self._queue_failed_at > _QUIET_SECONDS:
                self._queue_failed_at = now
                log.warning("queue unavailable (%s): events wait in the outbox until it returns", type(exc).__name__)
            return False

    # -- the tasks --------------------------------------------------------------------------
    def relay_now(self) -> Counter[str]:
        """A relay pass (coalesced: a pass asked for while one runs in this process makes
        that one go round again), then a wake-up for each module that got deliveries."""
        created: Counter[str] = Counter()
        with self._lock:
            if self._relaying:
                self._relay_again = True
                return created
            self._relaying = True
        try:
            while True:
                new = self.relay.run()
                created.update(new)
                for name in new:
                    if not self.wake(name):
                        self.drain_now(name)  # the queue is down: this process drains it
                with self._lock:
                    if not self._relay_again:
                        self._relaying = False
                        return created
                    self._relay_again = False
        except BaseException:
            with self._lock:
                self._relaying = self._relay_again = False
            raise

    def drain_now(self, name: str, retry_failed: bool = False) -> None:
        """Drain module `name` (coalesced per process like relay_now); schedule its retry."""
        with self._lock:
            if name in self._draining:
                self._drain_again.add(name)
                return
            self._draining.add(name)
        try:
            while True:
                retry_at = self.drainer.drain(name, self.stopping, retry_failed)
                if retry_at is not None and not self.queue.immediate:
                    self.wake_at(name, retry_at)
                with self._lock:
                    if name not in self._drain_again:
                        self._draining.discard(name)
                        return
                    self._drain_again.discard(name)
        except BaseException:
            with self._lock:
                self._draining.discard(name)
                self._drain_again.discard(name)
            raise

    def sweep(self) -> None:
        """A worker's periodic pass: relay what no wake-up reached, and wake every module
        whose first owed delivery is due (a lost task, an expired lease, a retry)."""
        self.relay_now()
        now = utcnow()
        with self._db.unit_of_work(write=False) as uow:
            heads = {name: store.head(uow.session, name) for name in self.catalog.subscribers()}
        for name, first in heads.items():
            if is_due(first, now) and not self.wake(name):
                self.drain_now(name)
        for work in list(self._sweeps):
            self._guarded(work)

    def add_sweep(self, work: Callable[[], None]) -> None:
        """Run work() in every sweep too: a module's own due work (a webhook's retry falling
        due, a wake-up lost with a worker), found by the worker's timer like the deliveries."""
        self._sweeps.append(work)

    def remove_sweep(self, work: Callable[[], None]) -> None:
        if work in self._sweeps:
            self._sweeps.remove(work)

    def deliver_pending(self, retry_failed: bool = False, rounds: int = 20) -> None:
        """Relay and drain everything now, on this thread (tests; `credit-system events relay
        --drain`). retry_failed: failed deliveries are attempted now rather than at their time."""
        for _ in range(rounds):
            self._guarded(self._relay_inline)
            now = utcnow()
            for name in self.catalog.subscribers():
                self.drain_now(name, retry_failed)
            with self._db.unit_of_work(write=False) as uow:
                owing = [
                    name
                    for name in self.catalog.subscribers()
                    if is_due(store.head(uow.session, name), now, retry_failed)
                ]
                unstamped = store.oldest_unstamped(uow.session) is not None
            if not owing and not unstamped:
                return

    def _relay_inline(self) -> None:
        self.relay.run()

    def _guarded(self, work) -> None:
        try:
            work()
        except Exception:  # after a commit: the change stands, the sweep retries the rest
            log.exception("delivering events failed; they wait in the outbox")

    def stop(self) -> None:
        self.stopping.set()

    # -- health and metrics ------------------------------------------------------------------
    def health(self, name: str) -> dict:
        """`{backlog, oldest_pending_seconds, dead}` of a subscribing module."""
        with self._db.unit_of_work(write=False) as uow:
            count, oldest, dead = store.backlog(uow.session, name)
        age = round(max((utcnow() - oldest).total_seconds(), 0.0), 3) if oldest else 0.0
        return {"backlog": count, "oldest_pending_seconds": age, "dead": dead}

    def relay_lag_seconds(self) -> float:
        """How long the oldest event not yet relayed has waited (0 when none)."""
        with self._db.unit_of_work(write=False) as uow:
            oldest = store.oldest_unstamped(uow.session)
        return max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0
