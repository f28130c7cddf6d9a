"""connection_api: the database, cache and API base every other module shares."""

from __future__ import annotations

from app.http.api import CreditApi, refuse_nul_in_path, require_json_object
from app.infrastructure.database import Database, EventBus
from app.infrastructure.migrations import current_revision, head_revision
from app.kernel import Module


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

    def register_blueprint(self, blueprint, **options) -> None:
        """Add a module's routes through the API so they land in the OpenAPI document."""
        self.api.register_blueprint(blueprint, **options)

    def register_routes(self, app) -> None:
        app.before_request(refuse_nul_in_path)
        app.before_request(require_json_object)

    def health_check(self) -> dict:
        report = {"database": self.database.dialect, "cache": self.cache.backend}
        try:
            revision = current_revision(self.database.engine)
        except Exception as exc:
            return {**report, "status": "unhealthy", "error": f"database unreachable: {type(exc).__name__}"}
        report["schema_revision"] = revision
        if revision != head_revision():
            return {
                **report,
                "status": "unhealthy",
                "error": f"database schema is at {revision}, not {head_revision()}: run `credit-system db upgrade`",
            }
        try:
            self.cache.ping()
        except Exception as exc:
            return {**report, "status": "degraded", "error": f"cache unreachable: {type(exc).__name__}"}
        return {**report, "status": "healthy"}

    def shutdown(self) -> None:
        self.cache.close()
        self.database.dispose()
