"""The one way routes require a caller: authenticated, or an admin.

Owner-or-admin depends on the data asked for, so the services check it
(app.services.principal.require_owner_or_admin).
"""

from __future__ import annotations

from flask import g, request

from app.infrastructure.outbox import set_event_actor
from app.services.auth import AuthService
from app.services.errors import Forbidden, Unauthorized
from app.services.principal import Principal


class AccessGuard:
    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    def _bearer(self) -> str:
        # Straight from the WSGI environ: request.headers is a context proxy, then a
        # header-name translation, on every authenticated request.
        header = request._get_current_object().environ.get("HTTP_AUTHORIZATION", "")  # type: ignore[attr-defined]
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized()
        return token.strip()

    def session(self) -> tuple[Principal, str, int]:
        """(principal, token id, expiry) of the caller, checked once per request."""
        # One context lookup, not one per attribute.
        state = g._get_current_object()
        found = state.get("credit_session")
        if found is None:
            found = state.credit_session = self._auth.authenticate(self._bearer())
            set_event_actor(found[0].user_id)  # the events this request records are the caller's
        return found

    def principal(self) -> Principal:
        return self.session()[0]

    def admin(self) -> Principal:
        principal = self.principal()
        if not principal.is_admin:
            raise Forbidden("admin role required")
        return principal

    def optional(self) -> Principal | None:
        if not request.headers.get("Authorization"):
            return None
        try:
            return self.principal()
        except Unauthorized:
            return None
