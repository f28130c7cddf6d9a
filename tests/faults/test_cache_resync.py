"""The cache itself, against a Redis we stall: a write that could not land is never served
stale afterwards, by this process or (once Redis answers) by any other."""

from __future__ import annotations

import time

import pytest

from app.infrastructure.cache import RedisCache, versioned
from tests.faults.harness import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_lost_writes_are_deleted_once_redis_answers(redis_server, figures):
    writer, other = RedisCache(redis_server.url()), RedisCache(redis_server.url())
    try:
        writer.set_if_newer("balance:u1", 1, "[100]", 30)
        writer.set_if_newer("auth:user:u1", 1, "[true]", 30)
        assert versioned.decode(other.get("balance:u1")) == (1, "[100]")

        redis_server.pause()
        figures.faults += 1
        started = time.monotonic()
        writer.set_if_newer("balance:u1", 2, "[150]", 30)  # times out: Redis keeps version 1
        writer.set_if_newer("auth:user:u1", 2, "[false]", 30)  # skipped while backing off, remembered all the same
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"{elapsed:.2f}s: the second write should not wait out another timeout"
        assert writer.get("balance:u1") is None and writer.get_many(["auth:user:u1"]) == [None]
        redis_server.resume()

        # The writer never trusts those keys again until it has deleted them from Redis...
        assert writer.get("balance:u1") is None
        # ...which it does by itself, shortly after Redis answers; nobody reads the old value then.
        deleted_after = wait_until(lambda: other.get_many(["balance:u1", "auth:user:u1"]) == [None, None], timeout=3)
        assert deleted_after is not None, other.get_many(["balance:u1", "auth:user:u1"])
        figures.extra["stale_keys_deleted_after"] = f"{deleted_after:.2f}s"
        writer.set_if_newer("balance:u1", 3, "[170]", 30)
        assert versioned.decode(other.get("balance:u1")) == versioned.decode(writer.get("balance:u1")) == (3, "[170]")
    finally:
        writer.close()
        other.close()
