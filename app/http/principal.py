"""Who is calling, per request, as far as code outside user_management needs to know.

The Principal itself is plain data in app.services.principal; this is its request-scoped loader.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app

from app.services.principal import Principal

_LOADER_KEY = "credit_system.principal_loader"


def register_principal_loader(app, loader: Callable[[], Principal | None]) -> None:
    """user_management installs how a request's bearer token becomes a Principal."""
    app.extensions[_LOADER_KEY] = loader


def optional_principal() -> Principal | None:
    """The caller if a valid token was sent, else None; never raises for a bad token."""
    loader = current_app.extensions.get(_LOADER_KEY)
    if loader is None:
        return None
    try:
        return loader()
    except Exception:
        return None


def viewer_reads_all() -> bool:
    """An admin or an auditor is calling: health details and error texts are theirs to read."""
    principal = optional_principal()
    return bool(principal and principal.can_read_all)
