"""Credit System: a double-entry credit ledger served as a REST API.

create_app, build_container and plan_modules live in app.factory and are loaded from there
on first use (a module __getattr__, PEP 562), so `from app import create_app` works as
ever. They are not imported here because every `import app.<anything>` runs this file
first: the factory brings in Flask and every layer, and then a service, the CLI's
database commands or a worker could not be imported without the web framework (a test
checks that `import app.services.ledger` does not load Flask).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.factory import build_container, create_app, plan_modules

__all__ = ["build_container", "create_app", "plan_modules"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from app import factory

        return getattr(factory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
