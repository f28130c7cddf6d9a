"""The cache: Redis or in-process memory. It only ever holds what the database can rebuild,
so every operation degrades to a miss or a no-op when the backend is unreachable."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import redis

log = logging.getLogger(__name__)


class CacheUnavailable(RuntimeError):
    """The cache backend cannot be reached (only raised by ping)."""


_ANNOUNCED = object()


class ReadAhead:
    """Reads a request will make anyway, carried on its first cache round trip.

    Inside read_ahead_scope() (the app opens one per HTTP request), keys announced with
    read_ahead() are fetched along with the next get_many() and then answered once, from
    memory, by get(); a write to such a key drops it. Outside a scope, or for keys nobody
    announced, reads go to the backend as usual. A value read ahead is as fresh as the
    round trip it came with, a few microseconds earlier in the same request.
    """

    def _scope_var(self) -> ContextVar[dict[str, object] | None]:
        var = self.__dict__.get("_read_ahead_var")
        if var is None:  # one per cache instance: tests run several apps in a process
            var = self.__dict__["_read_ahead_var"] = ContextVar(f"read_ahead_{id(self)}", default=None)
        return var

    @contextmanager
    def read_ahead_scope(self) -> Iterator[None]:
        var = self._scope_var()
        token = var.set({})
        try:
            yield
        finally:
            var.reset(token)

    def read_ahead(self, *keys: str) -> None:
        scope = self._scope_var().get()
        if scope is not None:
            for key in keys:
                scope.setdefault(key, _ANNOUNCED)

    def _announced(self, exclude: Iterable[str]) -> list[str]:
        """Announced keys still to fetch, to add to a get_many about to go out."""
        scope = self._scope_var().get()
        if not scope:
            return []
        excluded = set(exclude)
        return [key for key, value in scope.items() if value is _ANNOUNCED and key not in excluded]

    def _keep(self, keys: list[str], values: list[str | None]) -> None:
        scope = self._scope_var().get()
        if scope is not None:
            scope.update(zip(keys, values, strict=True))

    def _take(self, key: str) -> tuple[bool, str | None]:
        """(True, value) if key was read ahead in this scope; each value is served once."""
        scope = self._scope_var().get()
        if not scope or scope.get(key, _ANNOUNCED) is _ANNOUNCED:
            return False, None
        return True, scope.pop(key)

    def _forget(self, keys: Iterable[str]) -> None:
        scope = self._scope_var().get()
        if scope:
            for key in keys:
                scope.pop(key, None)


class MemoryCache(ReadAhead):
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
        found, value = self._take(key)
        if found:
            return value
        with self._lock:
            return self._live(key, time.monotonic())

    def get_many(self, keys: list[str]) -> list[str | None]:
        ahead = self._announced(keys)
        now = time.monotonic()
        with self._lock:
            values = [self._live(key, now) for key in [*keys, *ahead]]
        self._keep(ahead, values[len(keys) :])
        return values[: len(keys)]

    def set(self, key: str, value: str, ttl: float) -> None:
        self._forget((key,))
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        """Store `version|value` unless the cache already holds a newer version."""
        self.set_many_if_newer([(key, version, value)], ttl)

    def set_many_if_newer(self, items: list[tuple[str, int, str]], ttl: float) -> None:
        self._forget(key for key, _, _ in items)
        with self._lock:
            now = time.monotonic()
            for key, version, value in items:
                current = self._live(key, now)
                if current is None or int(current.split("|", 1)[0]) < version:
                    self._data[key] = (now + ttl, f"{version}|{value}")

    def delete(self, *keys: str) -> None:
        self._forget(keys)
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


class RedisCache(ReadAhead):
    """Redis-backed cache shared by every process; failures are logged and treated as misses.

    A write that cannot reach Redis (down, or stalled) would leave the old value there for
    every process to serve once Redis answers again (a balance from before, a logged-out
    token as valid). So such a key is remembered: this process reads it as a miss, and a
    background thread deletes it from Redis as soon as Redis answers. After a failure the
    cache is also skipped for `backoff` seconds, so a stalled Redis costs a request one
    timeout, not one per cache call.

    Request-path commands go over a connection each thread keeps (`_call`), not through the
    client's pool: a pool checkout and return, the retry wrapper and the telemetry hooks
    cost more CPU than the round trip itself (measured: 65 us for an MGET through the
    client against 44 us on a kept connection; 82 us against 44 us for the script call).
    The only retry is the one `_call` makes on a connection Redis had already dropped;
    otherwise a failed call is a miss plus backoff.
    """

    backend = "redis"
    MAX_UNSYNCED = 100_000

    def __init__(self, url: str, timeout: float = 0.5, backoff: float = 1.0) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True, health_check_interval=10
        )
        self._set_if_newer = self.client.register_script(_SET_IF_NEWER)
        self._local = threading.local()
        self._connections: list[redis.Connection] = []
        self._last_warning = 0.0
        self._backoff = backoff
        self._skip_until = 0.0
        self._unsynced: dict[str, int] = {}  # key -> generation of its latest failed write
        self._generation = 0
        self._lock = threading.Lock()
        self._resync_thread: threading.Thread | None = None
        self._closed = threading.Event()

    def _connection(self) -> redis.Connection:
        """This thread's connection (connected on first use, and again after an error);
        a forked child makes its own rather than share its parent's socket."""
        kept = getattr(self._local, "kept", None)
        if kept is None or kept[0] != os.getpid():
            pool = self.client.connection_pool
            kept = self._local.kept = (os.getpid(), pool.connection_class(**pool.connection_kwargs))
            with self._lock:
                self._connections.append(kept[1])
        return kept[1]

    def _call(self, *args):
        """One command and its reply; on a socket error or timeout redis-py drops the
        connection, so the next call reconnects instead of reading a stale reply."""
        connection = self._connection()
        try:
            connection.send_command(*args)
            return connection.read_response()
        except redis.ConnectionError:
            # A kept connection outlives a Redis restart and the first use after one finds
            # it closed: that is not Redis being down, so reconnect and send it once more
            # (every command here is safe to repeat). A Redis really down fails again, fast.
            connection.disconnect()
            connection.send_command(*args)
            return connection.read_response()

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
                    self.client.delete(*keys[i : i + 1000])
            except redis.RedisError:
                continue
            self._skip_until = 0.0  # Redis answers again
            with self._lock:
                for key, generation in pending.items():
                    if self._unsynced.get(key) == generation:  # not failed again meanwhile
                        del self._unsynced[key]

    def get(self, key: str) -> str | None:
        found, value = self._take(key)
        if found:
            return value
        if self._skipping() or key in self._unsynced:
            return None
        try:
            return self._call("GET", key)
        except redis.RedisError as exc:
            self._failed(exc)
            return None

    def get_many(self, keys: list[str]) -> list[str | None]:
        ahead = self._announced(keys)
        wanted = [*keys, *ahead]
        if self._skipping():
            values = [None] * len(wanted)
        else:
            try:
                values = [
                    None if key in self._unsynced else value
                    for key, value in zip(wanted, self._call("MGET", *wanted), strict=True)
                ]
            except redis.RedisError as exc:
                self._failed(exc)
                values = [None] * len(wanted)
        self._keep(ahead, values[len(keys) :])
        return values[: len(keys)]

    def set(self, key: str, value: str, ttl: float) -> None:
        self._forget((key,))
        if self._skipping():
            return self._remember((key,))
        try:
            self._call("SET", key, value, "PX", int(ttl * 1000))
        except redis.RedisError as exc:
            self._failed(exc, (key,))

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        self.set_many_if_newer([(key, version, value)], ttl)

    def set_many_if_newer(self, items: list[tuple[str, int, str]], ttl: float) -> None:
        """Versioned writes of several keys in one round trip."""
        keys = tuple(key for key, _, _ in items)
        self._forget(keys)
        if self._skipping():
            return self._remember(keys)
        args: list = [len(keys), *keys, int(ttl * 1000)]
        for _, version, value in items:
            args += [version, value]
        try:
            try:
                self._call("EVALSHA", self._set_if_newer.sha, *args)
            except redis.exceptions.NoScriptError:  # a restarted or flushed Redis: EVAL loads it again
                self._call("EVAL", _SET_IF_NEWER, *args)
        except redis.RedisError as exc:
            self._failed(exc, keys)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        self._forget(keys)
        if self._skipping():
            return self._remember(keys)
        try:
            self._call("DEL", *keys)
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
        with self._lock:
            for connection in self._connections:
                connection.disconnect()
            self._connections.clear()
        self.client.close()


def build_cache(url: str) -> MemoryCache | RedisCache:
    if url.startswith("memory://"):
        return MemoryCache()
    return RedisCache(url)
