"""Login, token verification and logout."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import CursorResult, delete, or_, select
from sqlalchemy.exc import IntegrityError

from app.infrastructure.database import Database
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.tables import RevokedToken, User
from app.services.auth_state import AuthStateCache
from app.services.errors import InvalidCredentials, Unauthorized
from app.services.login_throttle import LoginThrottle
from app.services.passwords import Passwords
from app.services.principal import Principal
from app.services.tokens import Tokens
from app.vocabulary import EventType


class AuthService:
    def __init__(
        self,
        database: Database,
        passwords: Passwords,
        tokens: Tokens,
        throttle: LoginThrottle,
        auth_state: AuthStateCache,
    ) -> None:
        self._db = database
        self._passwords = passwords
        self._tokens = tokens
        self._throttle = throttle
        self._state = auth_state

    @property
    def token_ttl(self) -> int:
        return self._tokens.ttl

    def login(self, identifier: str, password: str, client: str) -> str:
        """A token for a username-or-email and password; the same error for every failure.

        The attempt is counted against the account it names (the user it resolves to) and
        the client address before the password is checked (app.services.login_throttle).
        """
        key = identifier.lower()
        with self._db.unit_of_work(write=False) as uow:
            user = uow.session.scalar(select(User).where(or_(User.username_key == key, User.email_key == key)))
        admission = self._throttle.admit(LoginThrottle.account_key(user.id if user else None, identifier), client)
        # Verify even when the user is unknown or inactive, so timing does not tell which.
        matches = self._passwords.verify(user.password_hash if user else None, password)
        if not (matches and user is not None and user.is_active):
            reason = "unknown_user" if user is None else "wrong_password" if not matches else "inactive"
            self._record_login(EventType.LOGIN_FAILED, user, {"identifier": identifier, "reason": reason})
            raise InvalidCredentials()
        self._throttle.succeeded(admission)
        self._record_login(EventType.LOGIN_SUCCEEDED, user, {"identifier": identifier})
        token, claims = self._tokens.issue(user.id, user.token_version)
        self._state.store_user(user.id, user.token_version, user.is_active, user.role)
        self._state.store_token(claims.jti, False, claims.expires_at - time.time())
        return token

    def _record_login(self, event_type: str, user: User | None, data: dict) -> None:
        """An auth.login_* event (the identifier tried and why, never the password); the user acts."""
        user_id = user.id if user is not None else None
        with self._db.unit_of_work() as uow:
            uow.record(
                DomainEvent(event_type, user_id, data, target_type="user" if user_id else None, actor_id=user_id)
            )
            uow.commit()

    def authenticate(self, token: str) -> tuple[Principal, str, int]:
        """(principal, jti, expiry) for a valid, unrevoked token of an active user."""
        claims = self._tokens.decode(token)
        user_state, revoked = self._state.lookup(claims.user_id, claims.jti)
        if user_state is None or revoked is None:
            user_state, revoked = self._load_state(claims.user_id, claims.jti, claims.expires_at)
        version, active, role = user_state
        if revoked or not active or version != claims.version:
            raise Unauthorized("the access token has been revoked")
        return Principal(claims.user_id, role), claims.jti, claims.expires_at

    def _load_state(self, user_id: str, jti: str, expires_at: int):
        with self._db.unit_of_work(write=False) as uow:
            user = uow.session.get(User, user_id)
            revoked = uow.session.get(RevokedToken, jti) is not None
        if user is None:
            raise Unauthorized("the access token is invalid")
        self._state.store_user(user.id, user.token_version, user.is_active, user.role)
        self._state.store_token(jti, revoked, expires_at - time.time())
        return (user.token_version, user.is_active, user.role), revoked

    def logout(self, principal: Principal, jti: str, expires_at: int) -> None:
        with self._db.unit_of_work() as uow:
            uow.session.add(
                RevokedToken(jti=jti, user_id=principal.user_id, expires_at=datetime.fromtimestamp(expires_at, UTC))
            )
            uow.after_commit(lambda: self._state.store_token(jti, True, expires_at - time.time()))
            try:
                uow.commit()
            except IntegrityError:  # already revoked by a concurrent logout
                uow.rollback()
                self._state.store_token(jti, True, expires_at - time.time())

    def purge_expired_revocations(self) -> int:
        """Revoked ids past their token's expiry can go: the token fails on expiry anyway."""
        with self._db.unit_of_work() as uow:
            expired = delete(RevokedToken).where(RevokedToken.expires_at < datetime.now(UTC))
            result = cast(CursorResult, uow.session.execute(expired))  # a DML statement's result has a rowcount
            uow.commit()
            return result.rowcount or 0
