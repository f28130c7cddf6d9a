"""Cache read-ahead: reads a request announces ride on its next get_many, on both backends.

The Redis cases count the commands that really reach Redis; a balance request must make
exactly one (the token check's MGET, carrying the balance).
"""

from __future__ import annotations

import pytest
import redis
from dependency_injector import providers

from app import create_app
from app.infrastructure.cache import MemoryCache, RedisCache
from tests import backends
from tests.helpers import balance_of, bearer, deposit, login, make_admin, register

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


@pytest.fixture(params=["memory", "redis"])
def cache(request, redis_url):
    if request.param == "memory":
        yield MemoryCache()
        return
    backends.flush_redis(redis_url)
    cache = RedisCache(redis_url)
    yield cache
    cache.close()
    backends.flush_redis(redis_url)


def change_behind_the_cache(cache, key: str, value: str) -> None:
    """Another process's write: it does not pass through this cache object."""
    if isinstance(cache, RedisCache):
        cache.client.set(key, value)
    else:
        cache._data[key] = (cache._data[key][0], value)


def test_an_announced_key_is_served_once_from_the_round_trip_it_rode_on(cache):
    cache.set("a", "1", 60)
    cache.set("b", "2", 60)
    with cache.read_ahead_scope():
        cache.read_ahead("b")
        assert cache.get_many(["a"]) == ["1"]
        change_behind_the_cache(cache, "b", "3")
        assert cache.get("b") == "2"  # from the read ahead: no second round trip
        assert cache.get("b") == "3"  # served once; later reads go to the backend


def test_outside_a_scope_announcing_does_nothing(cache):
    cache.set("b", "2", 60)
    cache.read_ahead("b")
    cache.get_many(["a"])
    change_behind_the_cache(cache, "b", "3")
    assert cache.get("b") == "3"


def test_a_write_in_the_scope_drops_what_was_read_ahead(cache):
    cache.set("b", "1|old", 60)
    with cache.read_ahead_scope():
        cache.read_ahead("b", "c")
        cache.get_many(["a"])
        cache.set_if_newer("b", 2, "new", 60)
        cache.delete("c")
        assert cache.get("b") == "2|new"
        cache.set("c", "fresh", 60)
        assert cache.get("c") == "fresh"


def test_what_was_read_ahead_does_not_outlive_its_scope(cache):
    cache.set("b", "2", 60)
    with cache.read_ahead_scope():
        cache.read_ahead("b")
        cache.get_many(["a"])
    change_behind_the_cache(cache, "b", "3")
    with cache.read_ahead_scope():
        assert cache.get("b") == "3"


def test_redis_gets_one_command_for_the_keys_and_the_announced_ones(redis_url, monkeypatch):
    backends.flush_redis(redis_url)
    cache = RedisCache(redis_url)
    try:
        cache.set("b", "2", 60)
        log = CommandLog(monkeypatch)
        with cache.read_ahead_scope():
            cache.read_ahead("b")
            assert cache.get_many(["a"]) == [None]
            assert cache.get("b") == "2"
        assert log.names == ["MGET"]
    finally:
        cache.close()
        backends.flush_redis(redis_url)


def test_read_ahead_while_redis_is_unreachable_is_a_miss():
    cache = RedisCache("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        with cache.read_ahead_scope():
            cache.read_ahead("b")
            assert cache.get_many(["a"]) == [None]
            assert cache.get("b") is None
    finally:
        cache.close()


def test_a_balance_request_makes_one_redis_round_trip(container, settings, redis_url, monkeypatch):
    backends.flush_redis(redis_url)
    container.cache.override(providers.Singleton(RedisCache, redis_url))
    app = create_app(settings, container=container)
    try:
        client = app.test_client()
        make_admin(app)
        admin = bearer(login(client, "admin"))
        user_id = register(client, "carol")["id"]
        deposit(client, admin, user_id, 40)
        assert balance_of(client, admin, user_id) == 40  # the token state and balance are cached now

        log = CommandLog(monkeypatch)
        assert balance_of(client, admin, user_id) == 40
        assert log.names == ["MGET"]
    finally:
        app.module_manager.shutdown()
        backends.flush_redis(redis_url)
