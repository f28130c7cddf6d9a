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

    def shutdown(self) -> None:
        """Release resources; called in reverse load order."""


def is_module_class(obj: Any) -> TypeGuard[type[Module]]:
    return isinstance(obj, type) and issubclass(obj, Module) and obj is not Module and bool(getattr(obj, "NAME", ""))
