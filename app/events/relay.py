"""The relay: stamps committed events with the next sequence and fans them out to modules."""

from __future__ import annotations

import logging
from collections import Counter

from app.events import store
from app.events.catalog import EventCatalog
from app.events.policy import EventPolicy
from app.infrastructure.database import Database
from app.infrastructure.tables import utcnow
from app.vocabulary import DeliveryStatus

log = logging.getLogger(__name__)


class Relay:
    """One pass: under the relay lock (one relay at a time, across every process), stamp the
    committed, unstamped events with max(sequence)+1.. in id order, and in the same
    transaction insert one pending delivery per (event, subscribing module). Batches of
    `relay_batch` events per transaction, until none is left.

    A stamp is given at relay time, so the sequence is gap-free and in the order events
    became visible: an event whose transaction commits late is stamped late (a sequence
    assigned at insert would not be: transactions commit out of order).
    """

    def __init__(self, database: Database, catalog: EventCatalog, policy: EventPolicy) -> None:
        self._db, self._catalog, self._policy = database, catalog, policy
        self._subscribers_known = False

    def run(self) -> Counter[str]:
        """Relay everything committed so far; the new deliveries per module."""
        if not self._subscribers_known:
            with self._db.unit_of_work() as uow:
                store.ensure_subscribers(uow.session, self._catalog.subscribers(), utcnow())
                uow.commit()
            self._subscribers_known = True
        created: Counter[str] = Counter()
        while True:
            stamped = self._pass(created)
            if stamped < self._policy.relay_batch:
                return created

    def _pass(self, created: Counter[str]) -> int:
        with self._db.unit_of_work() as uow:
            store.lock_relay(uow.session)
            rows = store.stamp(uow.session, self._policy.relay_batch)
            if not rows:
                return 0
            now = utcnow()
            deliveries = [
                {
                    "event_id": event_id,
                    "subscriber": name,
                    "sequence": sequence,
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "last_error": None,
                    "next_attempt_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for event_id, sequence, event_type in rows
                for name in self._catalog.subscribers_of(event_type)
            ]
            store.insert_deliveries(uow.session, deliveries)
            uow.commit()
        created.update(str(delivery["subscriber"]) for delivery in deliveries)
        log.debug("relayed %d events (sequences %d-%d)", len(rows), rows[0][1], rows[-1][1])
        return len(rows)
