"""Idempotency keys: a request's outcome stored in the same DB transaction as its effect."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from app.infrastructure.posting import INSERT_RECORD
from app.infrastructure.tables import IdempotencyKey
from app.services.errors import IdempotencyKeyReused


@dataclass(frozen=True)
class IdempotencyRequest:
    user_id: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, user_id: str, key: str, method: str, path: str, body: dict) -> IdempotencyRequest:
        """Fingerprint the request: same method, path and JSON body (key order ignored)."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()
        return cls(user_id, key, digest)


class OutcomeKind(StrEnum):
    """What a money movement came to; the HTTP edge gives each its status."""

    CREATED = "created"
    REFUSED = "refused"  # a refusal that is a business outcome, stored and replayed like a success


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    body: dict
    replayed: bool = False


# How a kind is stored in the record's status_code column: as the HTTP status that column
# has always held, so rows written before kinds existed, or by a process of either
# version, replay alike. A storage format, fixed: it does not follow the edge.
_STORED_CODE = {OutcomeKind.CREATED: 201, OutcomeKind.REFUSED: 409}
_KIND_OF_CODE = {code: kind for kind, code in _STORED_CODE.items()}

# Built once: these run on every keyed money movement.
_keys = cast(Table, IdempotencyKey.__table__)
_MATCHES = (_keys.c.user_id == bindparam("owner"), _keys.c.key == bindparam("idempotency_key"))
_FIND = select(_keys.c.request_hash, _keys.c.status_code, _keys.c.response_body, _keys.c.expires_at).where(*_MATCHES)
_TAKE_OVER = update(_keys).where(*_MATCHES, _keys.c.expires_at <= bindparam("now", type_=_keys.c.expires_at.type))


class IdempotencyStore:
    def __init__(self, ttl_seconds: int) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)

    def find(self, session: Session, request: IdempotencyRequest) -> tuple[Outcome | None, bool]:
        """(stored outcome or None, whether an expired record holds the key).

        A different request under a live key is refused.
        """
        row = session.execute(_FIND, {"owner": request.user_id, "idempotency_key": request.key}).first()
        return self.answer(row, request)

    @staticmethod
    def answer(row: Any, request: IdempotencyRequest) -> tuple[Outcome | None, bool]:
        """find() for a record already read: one with request_hash, status_code,
        response_body and expires_at, or None."""
        if row is None:
            return None, False
        if row.expires_at <= datetime.now(UTC):
            return None, True  # past its lifetime: the key is free again
        if row.request_hash != request.fingerprint:
            raise IdempotencyKeyReused()
        return Outcome(_KIND_OF_CODE[row.status_code], json.loads(row.response_body), replayed=True), False

    def save(self, session: Session, request: IdempotencyRequest, outcome: Outcome, take_over: bool = False) -> None:
        """Record the outcome in the caller's transaction.

        A plain insert, so a request that recorded this key first (committed, or committing
        concurrently) makes it fail on the primary key, and the caller replays that request's
        answer. With take_over, an expired record is overwritten, but only while it is still
        expired, for the same reason.
        """
        now = datetime.now(UTC)
        values = self._values(request, outcome, now)
        if take_over:
            params = {"owner": request.user_id, "idempotency_key": request.key, "now": now, **values}
            taken_over = cast(CursorResult, session.execute(_TAKE_OVER, params))
            if taken_over.rowcount == 1:
                return
        INSERT_RECORD.execute(session, self.record(request, outcome, now))

    def record(self, request: IdempotencyRequest, outcome: Outcome, now: datetime | None = None) -> dict:
        """The row save() inserts, column by column (for a posting writer to send with the posting)."""
        values = self._values(request, outcome, now or datetime.now(UTC))
        return {"user_id": request.user_id, "key": request.key, **values}

    def _values(self, request: IdempotencyRequest, outcome: Outcome, now: datetime) -> dict:
        return {
            "request_hash": request.fingerprint,
            "status_code": _STORED_CODE[outcome.kind],
            "response_body": json.dumps(outcome.body),
            "created_at": now,
            "expires_at": now + self.ttl,
        }

    @staticmethod
    def purge_expired(session: Session) -> int:
        expired = delete(IdempotencyKey).where(IdempotencyKey.expires_at < datetime.now(UTC))
        result = cast(CursorResult, session.execute(expired))
        return result.rowcount or 0
