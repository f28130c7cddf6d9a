"""RedisCache keeps its connections and reuses them whichever thread (or greenlet) calls;
one that Redis dropped (a restart, a killed client) is replaced on first use, not
mistaken for Redis being down."""

from __future__ import annotations

import threading

import pytest
import redis

from app.infrastructure.cache import RedisCache, versioned
from tests import backends

pytestmark = pytest.mark.integration


def test_a_connection_redis_dropped_is_replaced_without_a_miss_or_backoff(redis_url):
    backends.flush_redis(redis_url)
    cache = RedisCache(redis_url)
    admin = redis.Redis.from_url(redis_url)
    try:
        cache.set_if_newer("k", 1, "v1", 60)
        (kept,) = cache._idle
        client_id = admin.execute_command("CLIENT", "KILL", "ID", _client_id(admin, kept), "SKIPME", "yes")
        assert client_id == 1  # Redis closed the cache's connection, as a restart would
        assert [versioned.decode(value) for value in cache.get_many(["k"])] == [(1, "v1")]
        cache.set_if_newer("b", 2, "new", 60)
        assert not cache._skipping() and "b" not in cache._unsynced
        assert versioned.decode(admin.get("b").decode()) == (2, "new")
    finally:
        cache.close()
        admin.close()
        backends.flush_redis(redis_url)


def test_short_lived_callers_reuse_the_kept_connections(redis_url):
    """Under gevent every HTTP connection is a greenlet: one Redis connection per caller
    would be one per client, never reused. Callers that come and go share a few."""
    backends.flush_redis(redis_url)
    cache = RedisCache(redis_url)
    try:
        for n in range(20):  # one caller after another, each on a thread of its own
            caller = threading.Thread(target=cache.set_if_newer, args=(f"k{n}", 1, "v", 60))
            caller.start()
            caller.join()
        assert len(cache._connections) == 1
        barrier = threading.Barrier(8)

        def busy():
            barrier.wait()
            for _ in range(50):
                cache.get_many(["k1", "k2"])

        callers = [threading.Thread(target=busy) for _ in range(8)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert 1 <= len(cache._connections) <= 8  # at most one per caller at once
        assert len(cache._idle) == len(cache._connections)  # every one handed back
    finally:
        cache.close()
        backends.flush_redis(redis_url)


def _client_id(admin: redis.Redis, connection: redis.Connection) -> int:
    """Redis's id for the client behind connection (matched by its local port)."""
    port = connection._sock.getsockname()[1]
    for client in admin.client_list():
        if client["addr"].endswith(f":{port}"):
            return int(client["id"])
    raise AssertionError("the cache's connection is not among Redis's clients")
