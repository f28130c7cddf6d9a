"""Cache read-ahead on real Redis, counting the commands that really reach it: a balance
request must make exactly one (the token check's MGET, carrying the balance).

What read-ahead promises on every backend is in tests/contract/test_cache_contract.py.
"""

from __future__ import annotations

import pytest
import redis
from dependency_injector import providers

from app.infrastructure.cache import RedisCache, versioned
from tests import backends
from tests.helpers import balance_of, deposit

pytestmark = pytest.mark.integration


class CommandLog:
    """Records the name of every command any redis-py connection writes to its socket."""

    def __init__(self, monkeypatch) -> None:
        self.names: list[str] = []
        send = redis.Connection.send_packed_command

        def send_packed_command(connection, command, check_health=True):
            chunks = [command] if isinstance(command, (bytes, str)) else command
            # RESP: *<n>\r\n$<len>\r\n<name>\r\n... — the name is the third line.
            self.names.append(
                bytes(b"".join(c if isinstance(c, bytes) else bytes(c) for c in chunks))
                .split(b"\r\n")[2]
                .decode()
                .upper()
            )
            return send(connection, command, check_health)

        monkeypatch.setattr(redis.Connection, "send_packed_command", send_packed_command)


def test_redis_gets_one_command_for_the_keys_and_the_announced_ones(redis_url, monkeypatch):
    backends.flush_redis(redis_url)
    cache = RedisCache(redis_url)
    try:
        cache.set_if_newer("b", 2, "b", 60)
        log = CommandLog(monkeypatch)
        with cache.read_ahead.scope():
            cache.read_ahead.announce("b")
            assert cache.get_many(["a"]) == [None]
            assert versioned.decode(cache.get("b")) == (2, "b")
        assert log.names == ["MGET"]
    finally:
        cache.close()
        backends.flush_redis(redis_url)


def test_read_ahead_while_redis_is_unreachable_is_a_miss():
    cache = RedisCache("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        with cache.read_ahead.scope():
            cache.read_ahead.announce("b")
            assert cache.get_many(["a"]) == [None]
            assert cache.get("b") is None
    finally:
        cache.close()


@pytest.fixture
def redis_cache(container, redis_url):
    """The app's cache is real Redis, whatever the selected backend."""
    backends.flush_redis(redis_url)
    container.cache.override(providers.Singleton(RedisCache, redis_url))


def test_a_balance_request_makes_one_redis_round_trip(redis_cache, client, people, monkeypatch):
    admin = people.admin.headers
    user_id = people.add("carol").id
    deposit(client, admin, user_id, 40)
    assert balance_of(client, admin, user_id) == 40  # the token state and balance are cached now

    log = CommandLog(monkeypatch)
    assert balance_of(client, admin, user_id) == 40
    assert log.names == ["MGET"]
