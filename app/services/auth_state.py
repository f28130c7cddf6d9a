"""What a token check needs (user's token version, active flag, role; revoked token ids),
cached with version guards so a slow reader can never put back a stale answer."""

from __future__ import annotations

import json

import orjson

from app.infrastructure.cache import Cache, versioned


class AuthStateCache:
    def __init__(self, cache: Cache, ttl_seconds: float = 300) -> None:
        self._cache = cache
        self._ttl = ttl_seconds

    @staticmethod
    def user_key(user_id: str) -> str:
        return f"auth:user:{user_id}"

    @staticmethod
    def token_key(jti: str) -> str:
        return f"auth:jti:{jti}"

    def lookup(self, user_id: str, jti: str) -> tuple[tuple[int, bool, str] | None, bool | None]:
        """((version, active, role) or None, revoked or None) — None means ask the database."""
        user_raw, token_raw = self._cache.get_many([self.user_key(user_id), self.token_key(jti)])
        user = None
        stored_user = versioned.decode(user_raw)
        if stored_user is not None:
            version, payload = stored_user
            active, role = orjson.loads(payload)  # read on every authenticated request
            user = (version, bool(active), role)
        stored_token = versioned.decode(token_raw)
        revoked = None if stored_token is None else stored_token[0] == 1
        return user, revoked

    def store_user(self, user_id: str, version: int, active: bool, role: str) -> None:
        # Deactivating bumps the version, so "newer" always wins over what a reader saw.
        self._cache.set_if_newer(self.user_key(user_id), version, json.dumps([active, role]), self._ttl)

    def store_token(self, jti: str, revoked: bool, ttl: float) -> None:
        if ttl > 0:
            self._cache.set_if_newer(self.token_key(jti), 1 if revoked else 0, "", min(ttl, self._ttl))
