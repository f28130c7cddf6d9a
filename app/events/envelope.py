"""The event envelope as handlers receive it and the API serves it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    """One committed event: `{id, sequence, type, occurred_at, actor, request_id, data}` on the
    wire (API.md "Events"), plus what the audit trail needs and the API never serves:
    `target_type`/`target_id` (what it is about) and `remote_addr` (where the request came from).
    """

    id: str
    sequence: int
    type: str
    occurred_at: datetime
    actor_type: str  # "user" | "system"
    actor_id: str | None
    request_id: str | None
    data: dict[str, Any]
    target_type: str | None = None
    target_id: str | None = None
    remote_addr: str | None = None

    @property
    def actor(self) -> dict[str, Any]:
        return {"type": self.actor_type, "id": self.actor_id}

    def public(self) -> dict[str, Any]:
        """The Event as API.md defines it (no remote_addr, no target)."""
        return {
            "id": self.id,
            "sequence": self.sequence,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": self.actor,
            "request_id": self.request_id,
            "data": self.data,
        }

    @classmethod
    def from_row(cls, row: Any) -> Event:
        """From a row with the outbox's columns (event_id as `event_id`)."""
        return cls(
            id=row.event_id,
            sequence=row.sequence,
            type=row.type,
            occurred_at=row.occurred_at,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            request_id=row.request_id,
            data=json.loads(row.data),
            target_type=row.target_type,
            target_id=row.target_id,
            remote_addr=row.remote_addr,
        )
