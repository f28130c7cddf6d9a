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
        self.set_many_if_newer([(key, version, value)], ttl)

    def set_many_if_newer(self, items: list[tuple[str, int, str]], ttl: float) -> None:
        with self._lock:
            now = time.monotonic()
            for key, version, value in items:
                current = self._live(key, now)
                if current is None or int(current.split("|", 1)[0]) < version:
                    self._data[key] = (now + ttl, f"{version}|{value}")

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._data.clear()


# Compare-and-set on the version prefix, atomically in Redis, for any number of keys:
# ARGV = ttl_ms, then (version, value) per key.
_SET_IF_NEWER = """
local stored = 0
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[2 * i])
  local current = redis.call('GET', key)
  local v = current and tonumber(string.match(current, '^(%d+)|'))
  if not v or v < version then
    redis.call('SET', key, ARGV[2 * i] .. '|' .. ARGV[2 * i + 1], 'PX', ARGV[1])
    stored = stored + 1
  end
end
return stored
"""


class RedisCache:
    """Redis-backed cache shared by every process; failures are logged and treated as misses.

    A write that cannot reach Redis (down, or stalled) would leave the old value there for
    every process to serve once Redis answers again (a balance from before, a logged-out
    token as valid). So such a key is remembered: this process reads it as a miss, and a
    background thread deletes it from Redis as soon as Redis answers. After a failure the
    cache is also skipped for `backoff` seconds, so a stalled Redis costs a request one
    timeout, not one per cache call.
    """

    backend = "redis"
    MAX_UNSYNCED = 100_000

    def __init__(self, url: str, timeout: float = 0.5, backoff: float = 1.0) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           decode_responses=True, health_check_interval=10)
        self._set_if_newer = self.client.register_script(_SET_IF_NEWER)
        self._last_warning = 0.0
        self._backoff = backoff
        self._skip_until = 0.0
        self._unsynced: dict[str, int] = {}  # key -> generation of its latest failed write
        self._generation = 0
        self._lock = threading.Lock()
        self._resync_thread: threading.Thread | None = None
        self._closed = threading.Event()

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 5:  # one line per burst, not one per request
            self._last_warning = now
            log.warning("cache unavailable, falling back to the database: %s", exc)

    def _skipping(self) -> bool:
        return time.monotonic() < self._skip_until

    def _failed(self, exc: Exception, unsynced: tuple[str, ...] = ()) -> None:
        self._skip_until = time.monotonic() + self._backoff
        self._warn(exc)
        self._remember(unsynced)

    def _remember(self, keys) -> None:
        """These keys' updates were lost: never trust what Redis holds for them until deleted."""
        if not keys:
            return
        with self._lock:
            if len(self._unsynced) >= self.MAX_UNSYNCED:
                log.error("too many cache keys to resync; some may stay stale until they expire")
                return
            self._generation += 1
            self._unsynced.update(dict.fromkeys(keys, self._generation))
            if self._resync_thread is None and not self._closed.is_set():
                self._resync_thread = threading.Thread(target=self._resync, name="cache-resync", daemon=True)
                self._resync_thread.start()

    def _resync(self) -> None:
        while not self._closed.wait(0.2):
            with self._lock:
                pending = dict(self._unsynced)
                if not pending:
                    self._resync_thread = None
                    return
            keys = list(pending)
            try:
                for i in range(0, len(keys), 1000):
                    self.client.delete(*keys[i:i + 1000])
            except redis.RedisError:
                continue
            self._skip_until = 0.0  # Redis answers again
            with self._lock:
                for key, generation in pending.items():
                    if self._unsynced.get(key) == generation:  # not failed again meanwhile
                        del self._unsynced[key]

    def get(self, key: str) -> str | None:
        if self._skipping() or key in self._unsynced:
            return None
        try:
            return self.client.get(key)
        except redis.RedisError as exc:
            self._failed(exc)
            return None

    def get_many(self, keys: list[str]) -> list[str | None]:
        if self._skipping():
            return [None] * len(keys)
        try:
            values = self.client.mget(keys)
        except redis.RedisError as exc:
            self._failed(exc)
            return [None] * len(keys)
        return [None if key in self._unsynced else value for key, value in zip(keys, values)]

    def set(self, key: str, value: str, ttl: float) -> None:
        if self._skipping():
            return self._remember((key,))
        try:
            self.client.set(key, value, px=int(ttl * 1000))
        except redis.RedisError as exc:
            self._failed(exc, (key,))

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        self.set_many_if_newer([(key, version, value)], ttl)

    def set_many_if_newer(self, items: list[tuple[str, int, str]], ttl: float) -> None:
        """Versioned writes of several keys in one round trip."""
        keys = tuple(key for key, _, _ in items)
        if self._skipping():
            return self._remember(keys)
        args: list = [int(ttl * 1000)]
        for _, version, value in items:
            args += [version, value]
        try:
            self._set_if_newer(keys=list(keys), args=args)
        except redis.RedisError as exc:
            self._failed(exc, keys)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        if self._skipping():
            return self._remember(keys)
        try:
            self.client.delete(*keys)
        except redis.RedisError as exc:
            self._failed(exc, keys)

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise CacheUnavailable(str(exc)) from exc
        self._skip_until = 0.0

    def close(self) -> None:
        self._closed.set()
        self.client.close()


def build_cache(url: str) -> MemoryCache | RedisCache:
    if url.startswith("memory://"):
        return MemoryCache()
    return RedisCache(url)
