"""Hand-written fakes injected by provider override (unit tests only)."""

from __future__ import annotations

from app.infrastructure.cache import ReadAhead


class FakeCache(ReadAhead):
    """An in-memory cache whose backend can be made unreachable; counts pings."""

    backend = "fake"

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.pings = 0
        self.data: dict[str, str] = {}

    def get(self, key):
        return None if self.down else self.data.get(key)

    def get_many(self, keys):
        return [self.get(k) for k in keys]

    def set(self, key, value, ttl):
        if not self.down:
            self.data[key] = value

    def set_if_newer(self, key, version, value, ttl):
        if self.down:
            return
        current = self.data.get(key)
        if current is None or int(current.split("|", 1)[0]) < version:
            self.data[key] = f"{version}|{value}"

    def set_many_if_newer(self, items, ttl):
        for key, version, value in items:
            self.set_if_newer(key, version, value, ttl)

    def delete(self, *keys):
        for key in keys:
            self.data.pop(key, None)

    def ping(self):
        self.pings += 1
        if self.down:
            raise ConnectionError("cache is down")

    def close(self):
        self.data.clear()
