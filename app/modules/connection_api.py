"""connection_api: the database, cache and API base every other module shares."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from app.http.api import CreditApi, refuse_nul_in_path, require_json_object
from app.infrastructure.database import Database, EventBus
from app.infrastructure.database_url import masked_url
from app.kernel import Module

log = logging.getLogger(__name__)


class ConnectionApiModule(Module):
    NAME = "connection_api"
    DESCRIPTION = "Shared database, unit of work, cache and the API base"

    def __init__(self, database: Database, cache, api: CreditApi) -> None:
        self.database = database
        self.cache = cache
        self.api = api

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
        app.before_request(refuse_nul_in_path)
        app.before_request(require_json_object)

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
        try:
            self.cache.ping()
        except Exception as exc:
            return {**report, "status": "degraded", "error": f"cache unreachable: {type(exc).__name__}"}
        return {**report, "status": "healthy"}

    def shutdown(self) -> None:
        self.cache.close()
        self.database.dispose()
