"""Idempotency keys: a request's outcome stored in the same DB transaction as its effect."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

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


class IdempotencyStore:
    def __init__(self, ttl_seconds: int) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)

    def find(self, session: Session, request: IdempotencyRequest) -> Outcome | None:
        """The stored outcome for this key, or None; a different request under the key is refused."""
        row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == request.user_id,
                                                          IdempotencyKey.key == request.key))
        if row is None:
            return None
        if row.expires_at <= datetime.now(UTC):
            session.delete(row)  # past its lifetime: the key is free again
            session.flush()
            return None
        if row.request_hash != request.fingerprint:
            raise IdempotencyKeyReused()
        return Outcome(row.status_code, json.loads(row.response_body), replayed=True)

    def save(self, session: Session, request: IdempotencyRequest, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        record = IdempotencyKey(user_id=request.user_id, key=request.key, request_hash=request.fingerprint,
                                status_code=outcome.status, response_body=json.dumps(outcome.body),
                                created_at=now, expires_at=now + self.ttl)
        existing = session.get(IdempotencyKey, (request.user_id, request.key))
        if existing is not None and existing.expires_at <= now:
            # An expired record that find() removed comes back when a refused operation rolls
            # the unit of work back: overwrite it rather than duplicate it.
            session.merge(record)
            return
        # A live record is a concurrent request's with this key, committed since find(): the
        # insert must fail on the key so the caller answers as that request did. (Overwriting
        # it would let both requests take effect.)
        if existing is not None:
            session.expunge(existing)
        session.add(record)

    @staticmethod
    def purge_expired(session: Session) -> int:
        result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < datetime.now(UTC)))
        return result.rowcount or 0
