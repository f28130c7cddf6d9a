"""The contract every module fulfils."""

from __future__ import annotations

from typing import Any, ClassVar, TypeGuard


class Module:
    """A domain unit with a name, declared dependencies, routes and a health check.

    Collaborators (other modules, infrastructure, services) arrive through the
    constructor from the module's provider in containers.py; a module never looks
    another one up.
    """

    NAME: ClassVar[str] = ""
    DEPENDENCIES: ClassVar[tuple[str, ...]] = ()
    CRITICAL: ClassVar[bool] = True
    DESCRIPTION: ClassVar[str] = ""
    # URL prefixes this module serves: while it is failed or skipped they answer 503
    # module_unavailable instead of 404.
    ROUTE_PREFIXES: ClassVar[tuple[str, ...]] = ()
    # Events this module handles after they commit (app.events delivers them to handle_event):
    # exact types, prefixes ending in "." ("transaction."), or "*" for every type.
    EVENT_TYPES: ClassVar[tuple[str, ...]] = ()
    # Event types this module records itself, with a one-line description each.
    EMITS: ClassVar[dict[str, str]] = {}

    def initialize(self) -> bool:
        """Prepare resources; return False (or raise) to be marked failed."""
        return True

    def register_routes(self, app) -> None:
        """Add this module's HTTP routes to the Flask app."""

    def health_check(self) -> dict[str, Any]:
        """Report this module's own resources: at least {"status": healthy|degraded|unhealthy}.

        Everything in it is for admins, except "public_reason": a short cause of an unhealthy
        status that anyone may read (/readyz shows it), e.g. "database schema not migrated".
        """
        return {"status": "healthy"}

    def handle_event(self, uow: Any, event: Any) -> None:
        """Handle one event of EVENT_TYPES, in `uow`'s transaction (app.events.Event).

        Delivered at least once, in sequence order, after the change that recorded it has
        committed; the delivery is marked done in this same transaction, so the effect of a
        handler that returns happens once. Raise to have it retried later (backoff with
        jitter, then `dead`); nothing else is affected. Write idempotently by event.id all
        the same, and do no external I/O here: record a row and enqueue your own task.
        """
        raise NotImplementedError(f"{type(self).__name__} declares EVENT_TYPES but no handle_event")

    def handle_events(self, uow: Any, events: list[Any]) -> None:
        """Handle a batch of events (sequence order) in one transaction: override it to write
        a batch together (one statement for many rows) instead of handle_event per event.

        The same promises as handle_event. If it raises, the transaction is rolled back and
        the batch comes again one event at a time (`handle_events(uow, [event])`), so only
        the failing event waits for a retry. A module that overrides it needs no handle_event.
        """
        for event in events:
            self.handle_event(uow, event)

    def shutdown(self) -> None:
        """Release resources; called in reverse load order."""


def handles_events(cls: type) -> bool:
    """Whether a module class implements handle_event or handle_events."""
    handle_event, handle_events = getattr(cls, "handle_event", None), getattr(cls, "handle_events", None)
    return handle_event not in (None, Module.handle_event) or handle_events not in (None, Module.handle_events)


def batch_handler(module: Module) -> Any:
    """The module's handle_events when it writes batches together; None when it handles one by one."""
    return module.handle_events if type(module).handle_events is not Module.handle_events else None


def is_module_class(obj: Any) -> TypeGuard[type[Module]]:
    return isinstance(obj, type) and issubclass(obj, Module) and obj is not Module and bool(getattr(obj, "NAME", ""))
