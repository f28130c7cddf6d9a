"""Fakes to inject by provider override: `credit_container.cache.override(providers.Object(FakeCache()))`."""

from __future__ import annotations

import time

from app.infrastructure.cache import CacheUnavailable, ReadAhead, versioned


class FakeCache:
    """An in-memory app.infrastructure.cache.Cache whose backend can be made unreachable
    (`down`, at construction or any time later); counts pings. The project's cache contract
    suite (tests/contract) holds it to the same contract as the memory and Redis caches."""

    backend = "fake"

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.pings = 0
        self.read_ahead = ReadAhead()
        self.data: dict[str, tuple[float, str]] = {}  # key -> (expires, stored value)

    def _read(self, key: str) -> str | None:
        item = None if self.down else self.data.get(key)
        return item[1] if item and item[0] > time.monotonic() else None

    def get(self, key: str) -> str | None:
        found, value = self.read_ahead.take(key)
        return value if found else self._read(key)

    def get_many(self, keys: list[str]) -> list[str | None]:
        ahead = self.read_ahead.pending(keys)
        values = [self._read(key) for key in [*keys, *ahead]]
        self.read_ahead.keep(ahead, values[len(keys) :])
        return values[: len(keys)]

    def set_if_newer(self, key: str, version: int, value: str, ttl: float) -> None:
        self.set_many_if_newer([(key, version, value)], ttl)

    def set_many_if_newer(self, items: list[tuple[str, int, str]], ttl: float) -> None:
        self.read_ahead.forget(key for key, _, _ in items)
        for key, version, value in items:
            if self.down:  # a lost write: its key must not serve the older value once back up
                self.data.pop(key, None)
            elif versioned.is_newer(version, self._read(key)):
                self.data[key] = (time.monotonic() + ttl, versioned.encode(version, value))

    def delete(self, *keys: str) -> None:
        self.read_ahead.forget(keys)
        for key in keys:
            self.data.pop(key, None)

    def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise CacheUnavailable("cache is down")

    def close(self) -> None:
        self.data.clear()
