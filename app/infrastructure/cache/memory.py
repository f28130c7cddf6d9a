"""Process-local LRU cache with per-key expiry: the embedded default (`memory://`)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from app.infrastructure.cache import versioned
from app.infrastructure.cache.read_ahead import ReadAhead


class MemoryCache:
    backend = "memory"

    def __init__(self, max_entries: int = 100_000) -> None:
        self.read_ahead = ReadAhead()
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    @classmethod
    def from_url(cls, url: str) -> MemoryCache:
        return cls()

    def _live(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] < now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[1]

    def _store(self, key: str, value: str, expires: float) -> None:
        self._data[key] = (expires, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def get(self, key: str) -> str | None:
        found, value = self.read_ahead.take(key)
        if found:
            return value
        with self._lock:
            return self._live(key, time.monotonic())

    def get_many(self, keys: list[str]) -> list[str | None]:
        ahead = self.read_ahead.pending(keys)
        now = time.monotonic()
        with self._lock:
            values = [self._live(key, now) for key in [*keys, *ahead]]
        self.read_ahead.keep(ahead, values[len(keys) :])
        return values[: len(keys)]

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        self.set_many_if_newer([(key, version, value)], ttl)

    def set_many_if_newer(self, items: list[tuple[str, int, str]], ttl: float) -> None:
        self.read_ahead.forget(key for key, _, _ in items)
        with self._lock:
            now = time.monotonic()
            for key, version, value in items:
                if versioned.is_newer(version, self._live(key, now)):
                    self._store(key, versioned.encode(version, value), now + ttl)

    def delete(self, *keys: str) -> None:
        self.read_ahead.forget(keys)
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._data.clear()
