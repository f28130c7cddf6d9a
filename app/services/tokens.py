"""Signed, expiring bearer tokens (JWT, HS256)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from app.services.errors import Unauthorized


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    version: int
    jti: str
    expires_at: int


MAX_ID_LENGTH = 128  # user ids and token ids are 36 and 32 characters
CLOCK_SKEW_SECONDS = 60


def _is_id(value) -> bool:
    """A claim that names a row: a short string any database can take (no NUL, valid UTF-8)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


class Tokens:
    ALGORITHM = "HS256"
    VERIFIED_CACHE_SIZE = 10_000

    def __init__(self, secret_key: str, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._key = secret_key
        self.ttl = int(ttl_seconds)
        self._clock = clock
        # Revocation is not decided here (AuthService asks the cache/database every time);
        # this only spares re-checking the HMAC of a token already seen.
        self._verified: dict[str, TokenClaims] = {}

    def issue(self, user_id: str, version: int) -> tuple[str, TokenClaims]:
        now = int(self._clock())
        claims = TokenClaims(user_id, version, uuid.uuid4().hex, now + self.ttl)
        payload = {
            "sub": user_id,
            "ver": version,
            "jti": claims.jti,
            "iat": now,
            "exp": claims.expires_at,
            "typ": "access",
        }
        return jwt.encode(payload, self._key, algorithm=self.ALGORITHM), claims

    def decode(self, token: str) -> TokenClaims:
        """Verified claims; a token's signature never changes, so each is checked once per process."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if len(self._verified) >= self.VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        if claims.expires_at <= time.time():
            raise Unauthorized("the access token has expired")
        return claims

    def _verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token, self._key, algorithms=[self.ALGORITHM], options={"require": ["sub", "exp", "jti", "ver"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("the access token is invalid") from exc
        # Only the key holder can set these; still, a claim this server would never issue is
        # refused here rather than reaching the database (a NUL or a surrogate was a 500), and
        # no token outlives the lifetime this server gives its own.
        if (
            payload.get("typ") != "access"
            or type(payload["ver"]) is not int
            or not (_is_id(payload["sub"]) and _is_id(payload["jti"]))
            or payload["exp"] > self._clock() + self.ttl + CLOCK_SKEW_SECONDS
        ):
            raise Unauthorized("the access token is invalid")
        return TokenClaims(payload["sub"], payload["ver"], payload["jti"], int(payload["exp"]))
