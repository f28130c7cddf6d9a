"""The one way routes require a caller: authenticated, admin, or owner-or-admin."""

from __future__ import annotations

from flask import g, request

from app.http.principal import Principal
from app.services.auth import AuthService
from app.services.errors import Forbidden, Unauthorized


class AccessGuard:
    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    def _bearer(self) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized()
        return token.strip()

    def session(self) -> tuple[Principal, str, int]:
        """(principal, token id, expiry) of the caller, checked once per request."""
        if "credit_session" not in g:
            g.credit_session = self._auth.authenticate(self._bearer())
        return g.credit_session

    def principal(self) -> Principal:
        return self.session()[0]

    def admin(self) -> Principal:
        principal = self.principal()
        if not principal.is_admin:
            raise Forbidden("admin role required")
        return principal

    def owner_or_admin(self, user_id: str) -> Principal:
        """The caller if it owns user_id's data or is an admin; 403 otherwise."""
        principal = self.principal()
        if principal.user_id != user_id and not principal.is_admin:
            raise Forbidden("you may only act on your own account")
        return principal

    def optional(self) -> Principal | None:
        if not request.headers.get("Authorization"):
            return None
        try:
            return self.principal()
        except Unauthorized:
            return None
