"""Recording events: who and where (the event context), and the outbox row each event becomes.

A unit of work writes the events recorded in it at commit, in the same transaction as the
change (app.infrastructure.database). Who acted and from where is ambient: the HTTP edge
sets it per request (request id, client address, the authenticated user), a service may
name the actor explicitly (`DomainEvent(actor_id=...)`), and anything else (the CLI, a
worker) records the system as the actor. No web framework here: the context is a plain
contextvar.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, insert

from app.infrastructure.statements import Precompiled
from app.infrastructure.tables import OutboxEvent

SYSTEM, USER = "system", "user"
_KEEP = object()  # DomainEvent.actor_id: take the context's


class EventContext(NamedTuple):
    """Who is acting and from where, for the events recorded meanwhile.

    A named tuple rather than a frozen dataclass: every request makes three (its start, its
    caller, its end), and a frozen dataclass's __init__ and dataclasses.replace cost ~1.5 us of them.
    """

    request_id: str | None = None
    remote_addr: str | None = None
    actor_id: str | None = None  # None: the system


_NOBODY = EventContext()  # outside any request: the system acts
_context: ContextVar[EventContext] = ContextVar("credit_event_context", default=_NOBODY)


def event_context() -> EventContext:
    return _context.get()


def begin_event_context(request_id: str | None, remote_addr: str | None) -> None:
    """A request starts (its id and client address, no actor until a token says who), or ends (None, None)."""
    if request_id is None and not remote_addr:
        _context.set(_NOBODY)
    else:
        _context.set(EventContext(request_id, (remote_addr or None) and remote_addr[:64]))


def set_event_actor(user_id: str | None) -> None:
    """The authenticated caller acts from now on (in this request or task)."""
    current = _context.get()
    if current.actor_id != user_id:
        _context.set(EventContext(current.request_id, current.remote_addr, user_id))


@contextmanager
def acting(context: EventContext) -> Iterator[None]:
    """Record events inside as `context` says (a worker task, a test)."""
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened, recorded in the same transaction as the change.

    `type` is a registered event type (app.vocabulary.EventType, or a module's EMITS);
    `data` must be JSON-serialisable; `target_*` says what the event is about.
    """

    type: str
    target_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    target_type: str | None = None
    actor_id: Any = _KEEP  # a user id, None for the system, or left out: the context's
    event_id: str | None = None  # the envelope's id, when the recorder must know it (else a new UUID)

    def row(self, occurred_at: datetime) -> dict[str, Any]:
        """The outbox row, stamped now with the event context; `sequence` comes after commit."""
        context = _context.get()
        actor = context.actor_id if self.actor_id is _KEEP else self.actor_id
        return {
            "event_id": self.event_id or str(uuid.uuid4()),
            "sequence": None,
            "type": self.type,
            "occurred_at": occurred_at,
            "actor_type": USER if actor else SYSTEM,
            "actor_id": actor,
            "request_id": context.request_id,
            "remote_addr": context.remote_addr,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "data": json.dumps(self.data, separators=(",", ":")),
        }


_outbox = cast(Table, OutboxEvent.__table__)
# Precompiled: an event rides on every money movement (see app.infrastructure.statements).
INSERT_EVENT = Precompiled(insert(_outbox).inline(), column_keys=[c.key for c in _outbox.c if c.key != "id"])
