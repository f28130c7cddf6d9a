"""Which event types exist and which modules handle which: the registry the relay fans out by."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.vocabulary import EVENT_DESCRIPTIONS, event_type_matches

Handler = Callable[[Any, Any], None]  # handle_event(uow, event)
BatchHandler = Callable[[Any, list[Any]], None]  # handle_events(uow, events)


@dataclass(frozen=True)
class Subscription:
    """A module's declaration: its name and EVENT_TYPES."""

    name: str
    patterns: tuple[str, ...]

    def covers(self, event_type: str) -> bool:
        return any(event_type_matches(pattern, event_type) for pattern in self.patterns)


class EventCatalog:
    """The type registry (the core's types and every module's EMITS, with descriptions) and
    the subscriptions, filled by the composition root once the modules are planned; the
    handlers are looked up when a delivery runs (a module that failed to start has none)."""

    def __init__(self) -> None:
        self._types: dict[str, str] = dict(EVENT_DESCRIPTIONS)
        self._subscriptions: dict[str, Subscription] = {}
        self._handler_of: Callable[[str], Handler | None] = lambda name: None
        self._batch_handler_of: Callable[[str], BatchHandler | None] = lambda name: None
        self._fan_out: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    # -- filled at start ----------------------------------------------------------------
    def add_types(self, emits: dict[str, str]) -> None:
        for event_type, description in emits.items():
            self._types.setdefault(event_type, description)

    def subscribe(self, name: str, patterns: Iterable[str]) -> None:
        self._subscriptions[name] = Subscription(name, tuple(patterns))
        self._fan_out.clear()

    def set_handler_lookup(
        self,
        handler_of: Callable[[str], Handler | None],
        batch_handler_of: Callable[[str], BatchHandler | None] = lambda name: None,
    ) -> None:
        """handler_of(name): the module's handle_event, None while it does not run here;
        batch_handler_of(name): its handle_events, when it writes a batch together."""
        self._handler_of, self._batch_handler_of = handler_of, batch_handler_of

    # -- read -----------------------------------------------------------------------------
    def types(self) -> list[tuple[str, str]]:
        """(type, description), by type."""
        return sorted(self._types.items())

    def subscribers(self) -> list[str]:
        return sorted(self._subscriptions)

    def subscription(self, name: str) -> Subscription | None:
        return self._subscriptions.get(name)

    def subscribers_of(self, event_type: str) -> tuple[str, ...]:
        """The modules an event of this type is owed to (cached per type)."""
        found = self._fan_out.get(event_type)
        if found is None:
            found = tuple(name for name, sub in sorted(self._subscriptions.items()) if sub.covers(event_type))
            with self._lock:
                self._fan_out[event_type] = found
        return found

    def handler(self, name: str) -> Handler | None:
        return self._handler_of(name)

    def batch_handler(self, name: str) -> BatchHandler | None:
        return self._batch_handler_of(name)
