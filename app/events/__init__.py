"""The event backbone: events recorded with each change, relayed after commit and delivered
to the modules that handle them (docs/events.md). `Event` is what a handler receives."""

from app.events.envelope import Event

__all__ = ["Event"]
