"""One harness per cache backend, for the contract suite (test_cache_contract.py).

A harness builds its backend's cache, writes behind its back (as another process would),
gives another process's view of the same data and, if the backend can be unreachable,
takes it down and brings it back. Adding a backend: one harness class here, listed in
HARNESSES (with the registry schemes it covers).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from app.infrastructure.cache import Cache, build_cache
from app.testing import FakeCache
from tests import backends
from tests.helpers import eventually  # noqa: F401  (re-exported for the contract tests)


class Harness:
    schemes: tuple[str, ...] = ()  # the registry entries this harness tests
    can_go_down = False

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request

    def make(self) -> Cache:
        raise NotImplementedError

    def change_behind(self, cache: Cache, key: str, raw: str) -> None:
        """Store raw under key without going through `cache` (another process's write)."""
        raise NotImplementedError

    def other(self, cache: Cache) -> Cache:
        """Another process's cache on the same data (the same object where there is no other)."""
        return cache

    def go_down(self, cache: Cache) -> None:
        raise NotImplementedError

    def come_back(self, cache: Cache) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class MemoryHarness(Harness):
    schemes = ("memory",)

    def make(self) -> Cache:
        return build_cache("memory://")

    def change_behind(self, cache: Cache, key: str, raw: str) -> None:
        cache._data[key] = (time.monotonic() + 60, raw)  # type: ignore[attr-defined]


class FakeHarness(Harness):
    can_go_down = True

    def make(self) -> Cache:
        return FakeCache()

    def change_behind(self, cache: Cache, key: str, raw: str) -> None:
        cache.data[key] = (time.monotonic() + 60, raw)  # type: ignore[attr-defined]

    def go_down(self, cache: Cache) -> None:
        cache.down = True  # type: ignore[attr-defined]

    def come_back(self, cache: Cache) -> None:
        cache.down = False  # type: ignore[attr-defined]


class RedisHarness(Harness):
    """The real Redis of the test run, reached through a relay that can be cut: Redis
    unreachable while it keeps its data, as in a network partition or a stall."""

    schemes = ("redis", "rediss")  # rediss is the same class over TLS
    can_go_down = True

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.url = request.getfixturevalue("redis_url")
        backends.flush_redis(self.url)
        self.direct = redis.Redis.from_url(self.url, decode_responses=True)
        address = self.direct.connection_pool.connection_kwargs
        self.relay = Relay(address.get("host", "127.0.0.1"), address.get("port", 6379))
        self.relayed_url = f"redis://127.0.0.1:{self.relay.port}/{address.get('db', 0)}"
        self.caches: list[Cache] = []

    def make(self) -> Cache:
        cache = build_cache(self.relayed_url)
        self.caches.append(cache)
        return cache

    def change_behind(self, cache: Cache, key: str, raw: str) -> None:
        self.direct.set(key, raw, px=60_000)

    def other(self, cache: Cache) -> Cache:
        other = build_cache(self.url)
        self.caches.append(other)
        return other

    def go_down(self, cache: Cache) -> None:
        self.relay.cut()

    def come_back(self, cache: Cache) -> None:
        self.relay.restore()

    def close(self) -> None:
        for cache in self.caches:
            cache.close()
        self.relay.cut()
        self.direct.close()
        backends.flush_redis(self.url)


HARNESSES = [
    pytest.param(MemoryHarness, id="memory"),
    pytest.param(RedisHarness, id="redis", marks=pytest.mark.integration),
    pytest.param(FakeHarness, id="fake"),
]


class Relay:
    """A TCP relay to host:port on a port of its own; cut() refuses and drops every
    connection, restore() accepts again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._serve(self._listener)

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: same port
        self._serve(self._listener)

    def cut(self) -> None:
        with self._lock:
            doomed, self._sockets = [self._listener, *self._sockets], set()
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # also wakes the accept() of a listener
            except OSError:
                pass
            sock.close()

    def _serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), name="relay-accept", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), name="relay-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
