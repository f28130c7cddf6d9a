"""The audit trail's use cases: append an event as a chained entry (the module's handler),
list, read, verify, export, checkpoint and purge. No web framework here.

Appends are serialised per chain: under a transaction-scoped advisory lock on PostgreSQL
(SQLite serialises writers already), the head is read and the entry written in the same
transaction, and `event_id` is unique, so a redelivered event never adds a second entry.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.orm import Session

from app.events.catalog import EventCatalog
from app.events.envelope import Event
from app.infrastructure.database import Database
from app.infrastructure.outbox import SYSTEM, USER, DomainEvent, event_context
from app.infrastructure.tables import utcnow
from app.infrastructure.tables_audit import AuditEntry, AuditPurgePermit
from app.services.audit import export
from app.services.audit.chain import ALTERED, GENESIS, Break, Walk, entry_hash
from app.services.audit.checkpoint import CheckpointSigner
from app.services.audit.masking import masked
from app.services.errors import Forbidden, NotFound, ValidationFailed
from app.services.pagination import cursor_id, decode_cursor, encode_cursor
from app.services.principal import Principal

# The audit module's own event types (its EMITS).
READ, EXPORTED, CHECKPOINT, PURGED = "audit.read", "audit.exported", "audit.checkpoint", "retention.purged"
EMITS = {
    READ: "someone read the audit trail (entries, one entry or a verification); data says what",
    EXPORTED: "someone exported the audit trail; data has the format and the range",
    CHECKPOINT: "a signed head of the audit chain (sequence, hash, signature): carry it off the machine",
    PURGED: "old audit entries were purged; data.through_sequence and through_hash anchor what is left",
}
_LOCK_KEY = 0x617564_6974  # "audit": the chain's advisory lock on PostgreSQL
_PAGE = 2000  # entries per read while verifying or exporting
_COLUMNS = list(cast(Table, AuditEntry.__table__).c)


@dataclass(frozen=True)
class Filters:
    actor_id: str | None = None
    action: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def public(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class AuditTrail:
    def __init__(self, database: Database, secret_key: str, catalog: EventCatalog) -> None:
        self._db = database
        self._signer = CheckpointSigner(secret_key)
        self._catalog = catalog  # every event type there is (for the action filter)

    # -- writing ---------------------------------------------------------------------------
    def append_events(self, session: Session, events: list[Event]) -> None:
        """The module's handler: each event as the next entry, once, in the order given;
        one lock, one look-up of what is there and one INSERT for the whole batch."""
        if not events:
            return
        self._lock(session)
        ids = [event.id for event in events]
        # Delivered again, or appended by a purge in its own transaction: not a second entry.
        present = set(session.scalars(select(AuditEntry.event_id).where(AuditEntry.event_id.in_(ids))))
        head = self._head(session)
        rows = []
        for event in events:
            if event.id in present:
                continue
            present.add(event.id)
            entry = _chained(head, event.id, event.occurred_at, event.type, event.actor, _target(event), event)
            head = (entry["sequence"], entry["hash"])
            rows.append(_row(entry, event.occurred_at))
        if rows:
            session.execute(insert(AuditEntry), rows)

    def _append(self, session: Session, event_id, occurred_at, action, actor, target, source) -> dict[str, Any]:
        entry = _chained(self._head(session), event_id, occurred_at, action, actor, target, source)
        session.execute(insert(AuditEntry).values(_row(entry, occurred_at)))
        return entry

    @staticmethod
    def _head(session: Session) -> tuple[int, str]:
        """(sequence, hash) of the newest entry; (0, GENESIS) before the first."""
        head = session.execute(
            select(AuditEntry.sequence, AuditEntry.hash).order_by(AuditEntry.sequence.desc()).limit(1)
        ).first()
        return (head.sequence, head.hash) if head else (0, GENESIS)

    def _lock(self, session: Session) -> None:
        if self._db.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})

    # -- reading (audited) -------------------------------------------------------------------
    def entries(self, actor: Principal, filters: Filters, limit: int, cursor: str | None) -> Page:
        _require_reader(actor)
        self._check_action(filters.action)
        after = decode_cursor(cursor, 1)
        query = self._filtered(select(*_COLUMNS), filters).order_by(AuditEntry.sequence.desc()).limit(limit + 1)
        if after:
            query = query.where(AuditEntry.sequence < cursor_id(after[0]))
        with self._db.unit_of_work(write=False) as uow:
            rows = uow.session.execute(query).all()
        more = len(rows) > limit
        items = [_entry(row) for row in rows[:limit]]
        self._audit(READ, {"view": "entries", "filters": filters.public(), "returned": len(items)})
        return Page(items, encode_cursor(items[-1]["sequence"]) if more and items else None)

    def entry(self, actor: Principal, sequence: int) -> dict[str, Any]:
        _require_reader(actor)
        with self._db.unit_of_work(write=False) as uow:
            row = uow.session.execute(select(*_COLUMNS).where(AuditEntry.sequence == sequence)).first()
        if row is None:
            raise NotFound("no audit entry with that sequence")
        self._audit(READ, {"view": "entry", "sequence": sequence})
        return _entry(row)

    def verify(self, actor: Principal | None, from_sequence: int | None = None, from_hash: str | None = None):
        """The chain from its start (1, or just after the last purge), or from a trusted
        checkpoint `(from_sequence, from_hash)`: its entry must be there with that hash."""
        if actor is not None:
            _require_reader(actor)
        if (from_sequence is None) != (from_hash is None):
            missing = "from_hash" if from_hash is None else "from_sequence"
            raise ValidationFailed.field(missing, "from_sequence and from_hash go together (a checkpoint)")
        with self._db.unit_of_work(write=False) as uow:
            walk = self._start(uow.session, from_sequence, from_hash)
        if walk.verified:
            for page in self._pages(walk.next_sequence, None):
                if not walk.feed(page):
                    break
        if actor is not None:
            checkpoint = {"from_sequence": from_sequence} if from_sequence is not None else {}
            self._audit(READ, {"view": "verify", **checkpoint, "verified": walk.verified})
        return walk.verdict()

    def _start(self, session: Session, from_sequence: int | None, from_hash: str | None) -> Walk:
        if from_sequence is not None:
            row = session.execute(select(*_COLUMNS).where(AuditEntry.sequence == from_sequence)).first()
            walk = Walk(from_sequence, "")
            if row is None:
                walk.missing_after(from_sequence)  # the newest entries were deleted (or never were)
                return walk
            entry = _entry(row)
            walk = Walk(from_sequence, entry["prev_hash"])  # the checkpoint vouches for its entry's link
            walk.check(entry)
            if walk.verified and entry["hash"] != from_hash:
                walk = Walk(from_sequence, entry["prev_hash"])
                walk.broken = _altered(from_sequence)  # not the entry the checkpoint saw: rewritten
            return walk
        purge = session.execute(
            select(AuditEntry.data).where(AuditEntry.action == PURGED).order_by(AuditEntry.sequence.desc()).limit(1)
        ).scalar()
        if purge is None:
            return Walk(1, GENESIS)
        anchor = json.loads(purge)
        through, through_hash = anchor.get("through_sequence"), anchor.get("through_hash")
        if not isinstance(through, int) or not isinstance(through_hash, str):
            walk = Walk(1, GENESIS)
            walk.broken = _altered(1)
            return walk
        return Walk(through + 1, through_hash)

    def _pages(self, start: int, end: int | None) -> Iterator[list[dict[str, Any]]]:
        """Entries from sequence `start` (to `end`, inclusive), oldest first, a page per read
        transaction (a long walk holds no snapshot and no lock)."""
        after = start - 1
        while True:
            query = select(*_COLUMNS).where(AuditEntry.sequence > after).order_by(AuditEntry.sequence).limit(_PAGE)
            if end is not None:
                query = query.where(AuditEntry.sequence <= end)
            with self._db.unit_of_work(write=False) as uow:
                rows = uow.session.execute(query).all()
            if not rows:
                return
            page = [_entry(row) for row in rows]
            yield page
            after = page[-1]["sequence"]

    def export(self, actor: Principal, fmt: str, since: datetime | None, until: datetime | None) -> Iterator[str]:
        """The file's lines (export.render), for entries from the first at or after `since` to
        the last before `until`, every entry between them included (a contiguous range: the
        file verifies on its own). The range is fixed when the export starts."""
        _require_reader(actor)
        _check_range(since, until)
        with self._db.unit_of_work(write=False) as uow:
            low = uow.session.scalar(
                select(func.min(AuditEntry.sequence)).where(*([AuditEntry.occurred_at >= since] if since else []))
            )
            high = uow.session.scalar(
                select(func.max(AuditEntry.sequence)).where(*([AuditEntry.occurred_at < until] if until else []))
            )
        empty = low is None or high is None or low > high
        self._audit(
            EXPORTED,
            {
                "format": fmt,
                **Filters(since=since, until=until).public(),
                "from_sequence": None if empty else low,
                "to_sequence": None if empty else high,
            },
        )
        pages: Iterator[list[dict[str, Any]]] = iter(()) if low is None or empty else self._pages(low, high)
        return export.render((entry for page in pages for entry in page), fmt)

    # -- operating (the CLI) ----------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        with self._db.unit_of_work(write=False) as uow:
            row = uow.session.execute(
                select(AuditEntry.sequence, AuditEntry.hash).order_by(AuditEntry.sequence.desc()).limit(1)
            ).first()
        return (row.sequence, row.hash) if row else (0, GENESIS)

    def checkpoint(self) -> dict[str, Any]:
        """The head, signed, and recorded as an `audit.checkpoint` event (so a webhook or a mail
        carries it off the machine)."""
        sequence, head_hash = self.head()
        signed = self._signer.sign(sequence, head_hash, utcnow())
        self._audit(CHECKPOINT, signed)
        return signed

    def is_genuine(self, checkpoint: Any) -> bool:
        return self._signer.is_genuine(checkpoint)

    def purge(self, before: datetime) -> dict[str, Any]:
        """Delete every entry from the chain's start up to the last one before the first entry
        at or after `before` (whole ranges only), and append a `retention.purged` entry
        holding the last deleted hash: the chain still verifies from there. The only DELETE
        the database lets through (a permit row, visible to this transaction alone)."""
        with self._db.unit_of_work() as uow:
            session = uow.session
            self._lock(session)
            first, last = session.execute(select(func.min(AuditEntry.sequence), func.max(AuditEntry.sequence))).one()
            cut = session.scalar(select(func.min(AuditEntry.sequence)).where(AuditEntry.occurred_at >= before))
            through = last if cut is None else cut - 1
            if first is None or through < first:
                return {"purged": 0, "through_sequence": None, "through_hash": None}
            through_hash = session.scalar(select(AuditEntry.hash).where(AuditEntry.sequence == through))
            permit = str(uuid.uuid4())
            session.execute(insert(AuditPurgePermit).values(id=permit))
            purged = session.execute(delete(AuditEntry).where(AuditEntry.sequence <= through)).rowcount  # type: ignore[attr-defined]  # a CursorResult
            session.execute(delete(AuditPurgePermit).where(AuditPurgePermit.id == permit))
            data = {
                "before": _timestamp(before),
                "through_sequence": through,
                "through_hash": through_hash,
                "purged": purged,
            }
            # The entry is written here, in the purge's transaction, under the event's id: the
            # chain never lacks its anchor, and the event's delivery finds it there and adds none.
            event = DomainEvent(PURGED, None, data, target_type="audit", event_id=str(uuid.uuid4()))
            uow.record(event)
            context = event_context()
            actor = {"type": USER if context.actor_id else SYSTEM, "id": context.actor_id}
            source = _Source(data, context.request_id, context.remote_addr)
            self._append(session, event.event_id, utcnow(), PURGED, actor, _NO_TARGET, source)
            uow.commit()
        return data

    # -- helpers -----------------------------------------------------------------------------
    def _known_types(self) -> list[str]:
        return [event_type for event_type, _ in self._catalog.types()]

    def _audit(self, event_type: str, data: dict[str, Any]) -> None:
        with self._db.unit_of_work() as uow:
            uow.record(DomainEvent(event_type, None, data, target_type="audit"))
            uow.commit()

    def _check_action(self, action: str | None) -> None:
        if action is not None and not any(known.startswith(action) for known in self._known_types()):
            raise ValidationFailed.field("action", f"no event type is or starts with {action!r} (GET /events/types)")

    def _filtered(self, query, filters: Filters):
        _check_range(filters.since, filters.until)
        if filters.actor_id is not None:
            query = query.where(AuditEntry.actor_id == filters.actor_id)
        if filters.target_id is not None:
            query = query.where(AuditEntry.target_id == filters.target_id)
        if filters.action is not None:
            exact = filters.action in self._known_types()
            query = query.where(
                AuditEntry.action == filters.action
                if exact
                else AuditEntry.action.startswith(filters.action, autoescape=True)
            )
        if filters.since is not None:
            query = query.where(AuditEntry.occurred_at >= filters.since)
        if filters.until is not None:
            query = query.where(AuditEntry.occurred_at < filters.until)
        return query


@dataclass(frozen=True)
class _Source:
    """What an entry takes from its event besides the envelope, for entries the trail writes itself."""

    data: dict[str, Any]
    request_id: str | None = None
    remote_addr: str | None = None


_NO_TARGET = {"type": "audit", "id": None}


def _chained(head: tuple[int, str], event_id, occurred_at, action, actor, target, source) -> dict[str, Any]:
    """The entry that follows `head` (sequence, hash), its hashes computed."""
    sequence, prev_hash = head[0] + 1, head[1]
    entry = {
        "sequence": sequence,
        "event_id": event_id,
        "occurred_at": _timestamp(occurred_at),
        "action": action,
        "actor": masked(dict(actor)),
        "target": masked(dict(target)),
        "request_id": masked(source.request_id),
        "remote_addr": masked(source.remote_addr),
        "data": masked(source.data),
    }
    entry["prev_hash"], entry["hash"] = prev_hash, entry_hash(prev_hash, entry)
    return entry


def _target(event: Event) -> dict[str, Any]:
    return {"type": event.target_type, "id": event.target_id}


def _require_reader(actor: Principal) -> None:
    if not actor.can_read_all:
        raise Forbidden("the audit trail is for admins and auditors")


def _check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ValidationFailed.field("until", "must be later than since")


def _altered(sequence: int) -> Break:
    return Break(sequence, ALTERED)


def _timestamp(moment: datetime) -> str:
    """The one text form of an entry's time (part of what is hashed): ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat()


def _row(entry: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    return {
        "sequence": entry["sequence"],
        "event_id": entry["event_id"],
        "occurred_at": occurred_at,
        "action": entry["action"],
        "actor_type": entry["actor"]["type"],
        "actor_id": entry["actor"]["id"],
        "target_type": entry["target"]["type"],
        "target_id": entry["target"]["id"],
        "request_id": entry["request_id"],
        "remote_addr": entry["remote_addr"],
        "data": json.dumps(entry["data"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        "prev_hash": entry["prev_hash"],
        "hash": entry["hash"],
    }


def _entry(row: Any) -> dict[str, Any]:
    """The API's Entry from a row (key order as API.md lists them: exports keep it)."""
    return {
        "sequence": row.sequence,
        "event_id": row.event_id,
        "occurred_at": _timestamp(row.occurred_at),
        "action": row.action,
        "actor": {"type": row.actor_type, "id": row.actor_id},
        "target": {"type": row.target_type, "id": row.target_id},
        "request_id": row.request_id,
        "remote_addr": row.remote_addr,
        "data": json.loads(row.data),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
