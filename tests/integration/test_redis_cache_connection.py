"""RedisCache keeps a connection per thread; one that Redis dropped (a restart, a killed
client) is replaced on first use, not mistaken for Redis being down."""

from __future__ import annotations

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
        kept = cache._connection()
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


def _client_id(admin: redis.Redis, connection: redis.Connection) -> int:
    """Redis's id for the client behind connection (matched by its local port)."""
    port = connection._sock.getsockname()[1]
    for client in admin.client_list():
        if client["addr"].endswith(f":{port}"):
            return int(client["id"])
    raise AssertionError("the cache's connection is not among Redis's clients")
