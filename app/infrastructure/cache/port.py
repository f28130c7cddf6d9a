"""What the app asks of a cache. It only ever holds what the database can rebuild, so a
backend that cannot be reached answers reads with misses and drops writes, never raises
(only ping() says it is down); and a write it could not make must never let an older
value be served afterwards, by this process or, once the backend answers, by any other."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from app.infrastructure.cache.read_ahead import ReadAhead


class CacheUnavailable(RuntimeError):
    """The cache backend cannot be reached (only raised by ping)."""


@runtime_checkable
class Cache(Protocol):
    backend: str  # its name in health reports: "memory", "redis"
    read_ahead: ReadAhead  # the request-scoped reads get() and get_many() serve and fetch

    def get(self, key: str) -> str | None:
        """The stored value (versioned values come back encoded: decode with cache.versioned)."""

    def get_many(self, keys: list[str]) -> list[str | None]:
        """One value or None per key, in order; also fetches what was announced for read-ahead."""

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        """Store value as `version` unless the cache holds that version or a newer one."""

    def set_many_if_newer(self, items: list[tuple[str, int, str]], ttl: float) -> None:
        """set_if_newer for several (key, version, value), in one round trip, each key on its own."""

    def delete(self, *keys: str) -> None: ...

    def ping(self) -> None:
        """Raise CacheUnavailable if the backend cannot be reached."""

    def close(self) -> None: ...
