"""For tests of modules that handle events: deliver what is pending, deterministically.

    from app.events.testing import deliver_events

    client.post("/users", json=...)        # records user.created
    deliver_events(app)                     # relayed and handed to every module, on this thread
    assert my_module_saw(...)

With the immediate queue (`CREDIT_QUEUE_URL=memory://`, `immediate_queue()`) events are
already delivered right after each commit; deliver_events() is then what makes a failed
delivery's retries happen now (`retry_failed=True`) instead of at their scheduled time.
"""

from __future__ import annotations

from typing import Any

from app.infrastructure.queue import EventQueue


def deliver_events(app: Any, retry_failed: bool = False) -> None:
    """Relay every committed event and drain every subscribing module now, until nothing
    is due (retry_failed: a failed delivery counts as due, so its retries run now, up to
    its last attempt)."""
    app.events.deliver_pending(retry_failed=retry_failed, rounds=max(20, app.events.policy.max_attempts + 2))


def immediate_queue() -> EventQueue:
    """A queue that runs each task when it is enqueued, on the enqueuing thread (MemoryHuey,
    immediate mode): override the container's `queue` provider with it."""
    return EventQueue("memory://")
