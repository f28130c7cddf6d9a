"""connection_api: the database, cache, queue and API base every other module shares, and the
event feed (`/events`)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from app.http.api import CreditApi, screen_request
from app.http.events import build_events_blueprint
from app.http.guard import AccessGuard
from app.infrastructure.database import Database, EventBus
from app.infrastructure.database_url import masked_url
from app.infrastructure.queue import EventQueue
from app.kernel import Module
from app.services.events import EventFeed

log = logging.getLogger(__name__)


class ConnectionApiModule(Module):
    NAME = "connection_api"
    DESCRIPTION = "Shared database, unit of work, cache, queue, the API base and the event feed"
    ROUTE_PREFIXES = ("/events",)

    def __init__(
        self, database: Database, cache, api: CreditApi, queue: EventQueue, event_feed: EventFeed, guard: AccessGuard
    ) -> None:
        self.database = database
        self.cache = cache
        self.api = api
        self.queue = queue
        self.event_feed = event_feed
        self.guard = guard

    @property
    def events(self) -> EventBus:
        return self.database.bus

    def initialize(self) -> bool:
        """Read the schema's revision once at start: a database never migrated, or behind, is
        an error in the log (the server still starts, and serves once it is migrated)."""
        database = masked_url(self.database.engine.url)
        try:
            schema = self.database.schema()
        except SQLAlchemyError as exc:
            log.warning("database %s unreachable at start: %s", database, type(exc).__name__)
            return True
        if not schema.current:
            log.error("%s (database %s)", schema.advice, database)
        return True

    def register_blueprint(self, blueprint, **options) -> None:
        """Add a module's routes through the API so they land in the OpenAPI document."""
        self.api.register_blueprint(blueprint, **options)

    def register_routes(self, app) -> None:
        app.before_request(screen_request)
        self.register_blueprint(build_events_blueprint(self.event_feed, self.guard))

    def health_check(self) -> dict:
        report = {"database": self.database.dialect, "cache": self.cache.backend}
        try:
            schema = self.database.schema()
        except Exception as exc:
            return {
                **report,
                "status": "unhealthy",
                "error": f"database unreachable: {type(exc).__name__}",
                "public_reason": "database unreachable",
            }
        report["schema_revision"] = schema.revision
        if not schema.current:
            return {**report, "status": "unhealthy", "error": schema.advice, "public_reason": schema.problem}
        report["queue"] = self.queue.backend
        problems = []
        try:
            self.cache.ping()
        except Exception as exc:
            problems.append(f"cache unreachable: {type(exc).__name__}")
        try:
            self.queue.ping()
        except Exception as exc:  # writes go on; their events wait in the outbox until it returns
            problems.append(f"queue unreachable: {exc}"[:200])
        if problems:
            return {**report, "status": "degraded", "error": "; ".join(problems)}
        return {**report, "status": "healthy"}

    def shutdown(self) -> None:
        self.cache.close()
        self.queue.close()
        self.database.dispose()
