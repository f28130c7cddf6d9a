"""Idempotency keys: a request's outcome stored in the same DB transaction as its effect."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from app.infrastructure.statements import Pending, Precompiled
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


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict
    replayed: bool = False


# Built once: these run on every keyed money movement.
RECORDS = _keys = IdempotencyKey.__table__
_MATCHES = (_keys.c.user_id == bindparam("owner"), _keys.c.key == bindparam("idempotency_key"))
_FIND = select(_keys.c.request_hash, _keys.c.status_code, _keys.c.response_body, _keys.c.expires_at).where(*_MATCHES)
_INSERT = Precompiled(insert(_keys), column_keys=[c.key for c in _keys.c])
_TAKE_OVER = update(_keys).where(*_MATCHES, _keys.c.expires_at <= bindparam("now", type_=_keys.c.expires_at.type))


class IdempotencyStore:
    def __init__(self, ttl_seconds: int) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)

    def find(self, session: Session, request: IdempotencyRequest) -> tuple[Outcome | None, bool]:
        """(stored outcome or None, whether an expired record holds the key).

        A different request under a live key is refused.
        """
        row = session.execute(_FIND, {"owner": request.user_id, "idempotency_key": request.key}).first()
        if row is None:
            return None, False
        if row.expires_at <= datetime.now(UTC):
            return None, True  # past its lifetime: the key is free again
        if row.request_hash != request.fingerprint:
            raise IdempotencyKeyReused()
        return Outcome(row.status_code, json.loads(row.response_body), replayed=True), False

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
            taken_over = session.execute(
                _TAKE_OVER, {"owner": request.user_id, "idempotency_key": request.key, "now": now, **values}
            )
            if taken_over.rowcount == 1:
                return
        self.submit(session, self.record(request, outcome, now)).rows()

    def record(self, request: IdempotencyRequest, outcome: Outcome, now: datetime | None = None) -> dict:
        """The row save() inserts, column by column (for a caller that sends it itself)."""
        values = self._values(request, outcome, now or datetime.now(UTC))
        return {"user_id": request.user_id, "key": request.key, **values}

    @staticmethod
    def submit(session: Session, record: dict) -> Pending:
        """save()'s plain insert of a record(), sent without waiting for it (it can ride in a batch)."""
        return _INSERT.submit(session, record)

    def _values(self, request: IdempotencyRequest, outcome: Outcome, now: datetime) -> dict:
        return {
            "request_hash": request.fingerprint,
            "status_code": outcome.status,
            "response_body": json.dumps(outcome.body),
            "created_at": now,
            "expires_at": now + self.ttl,
        }

    @staticmethod
    def purge_expired(session: Session) -> int:
        result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < datetime.now(UTC)))
        return result.rowcount or 0
