"""The cache: Redis or in-process memory. It only ever holds what the database can rebuild,
so every operation degrades to a miss or a no-op when the backend is unreachable."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import redis

log = logging.getLogger(__name__)


class CacheUnavailable(RuntimeError):
    """The cache backend cannot be reached (only raised by ping)."""


class MemoryCache:
    """Process-local LRU cache with per-key expiry; the embedded default."""

    backend = "memory"

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def _live(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] < now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[1]

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key, time.monotonic())

    def get_many(self, keys: list[str]) -> list[str | None]:
        now = time.monotonic()
        with self._lock:
            return [self._live(key, now) for key in keys]

    def set(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        """Store `version|value` unless the cache already holds a newer version."""
        with self._lock:
            current = self._live(key, time.monotonic())
            if current is not None and int(current.split("|", 1)[0]) >= version:
                return
            self._data[key] = (time.monotonic() + ttl, f"{version}|{value}")

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._data.clear()


# Compare-and-set on the version prefix, atomically in Redis.
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local v = tonumber(string.match(current, '^(%d+)|'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"""


class RedisCache:
    """Redis-backed cache shared by every process; failures are logged and treated as misses."""

    backend = "redis"

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           decode_responses=True, health_check_interval=10)
        self._set_if_newer = self.client.register_script(_SET_IF_NEWER)
        self._last_warning = 0.0

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 5:  # one line per burst, not one per request
            self._last_warning = now
            log.warning("cache unavailable, falling back to the database: %s", exc)

    def get(self, key: str) -> str | None:
        try:
            return self.client.get(key)
        except redis.RedisError as exc:
            self._warn(exc)
            return None

    def get_many(self, keys: list[str]) -> list[str | None]:
        try:
            return self.client.mget(keys)
        except redis.RedisError as exc:
            self._warn(exc)
            return [None] * len(keys)

    def set(self, key: str, value: str, ttl: float) -> None:
        try:
            self.client.set(key, value, px=int(ttl * 1000))
        except redis.RedisError as exc:
            self._warn(exc)

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        try:
            self._set_if_newer(keys=[key], args=[version, value, int(ttl * 1000)])
        except redis.RedisError as exc:
            self._warn(exc)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            self.client.delete(*keys)
        except redis.RedisError as exc:
            self._warn(exc)

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise CacheUnavailable(str(exc)) from exc

    def close(self) -> None:
        self.client.close()


def build_cache(url: str) -> MemoryCache | RedisCache:
    if url.startswith("memory://"):
        return MemoryCache()
    return RedisCache(url)
