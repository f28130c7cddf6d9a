"""The contract every cache backend keeps (app.infrastructure.cache.Cache), run on each of
them: memory, Redis (real, integration) and the test fake. Versioned writes, read-ahead,
an unreachable backend, ping. Values are read through the codec (cache.versioned), never
by their encoding."""

from __future__ import annotations

import threading

import pytest

from app.infrastructure.cache import BACKENDS, Cache, CacheUnavailable, MemoryCache, versioned
from tests.contract.cache_backends import HARNESSES, eventually

DOWNABLE = [param for param in HARNESSES if param.values[0].can_go_down]


@pytest.fixture(params=HARNESSES)
def harness(request):
    harness = request.param(request)
    yield harness
    harness.close()


@pytest.fixture(params=DOWNABLE)
def downable(request):
    harness = request.param(request)
    yield harness
    harness.close()


@pytest.fixture
def cache(harness):
    return harness.make()


def read(cache: Cache, key: str) -> tuple[int, str] | None:
    return versioned.decode(cache.get(key))


def test_every_registered_backend_has_a_harness():
    covered = {scheme for param in HARNESSES for scheme in param.values[0].schemes}
    assert covered == set(BACKENDS)


def test_the_cache_is_a_cache(cache):
    assert isinstance(cache, Cache)
    assert cache.backend


# -- versioned writes ------------------------------------------------------------------------
def test_a_newer_version_replaces_an_older_one(cache):
    cache.set_if_newer("k", 1, "one", 60)
    cache.set_if_newer("k", 2, "two", 60)
    assert read(cache, "k") == (2, "two")


def test_an_older_or_equal_version_never_overwrites(cache):
    cache.set_if_newer("k", 3, "three", 60)
    cache.set_if_newer("k", 2, "two", 60)
    cache.set_if_newer("k", 3, "another three", 60)
    assert read(cache, "k") == (3, "three")


def test_set_many_if_newer_decides_key_by_key(cache):
    cache.set_many_if_newer([("a", 2, "a2"), ("b", 5, "b5")], 60)
    cache.set_many_if_newer([("a", 3, "a3"), ("b", 4, "b4"), ("c", 1, "c1")], 60)
    assert [versioned.decode(raw) for raw in cache.get_many(["a", "b", "c", "d"])] == [
        (3, "a3"),
        (5, "b5"),
        (1, "c1"),
        None,
    ]


def test_a_value_stored_without_a_version_is_replaced(harness, cache):
    harness.change_behind(cache, "k", "not versioned")
    assert read(cache, "k") is None  # the codec does not mistake it for a versioned value
    cache.set_if_newer("k", 1, "one", 60)
    assert read(cache, "k") == (1, "one")


def test_payloads_keep_the_separator_and_the_empty_string(cache):
    cache.set_many_if_newer([("a", 7, "x|y|z"), ("b", 0, "")], 60)
    assert cache.get_many(["a", "b"]) == [versioned.encode(7, "x|y|z"), versioned.encode(0, "")]
    assert (read(cache, "a"), read(cache, "b")) == ((7, "x|y|z"), (0, ""))


def test_a_value_expires_after_its_ttl(cache):
    cache.set_if_newer("k", 1, "one", 0.05)
    assert eventually(lambda: cache.get("k") is None, timeout=2)
    cache.set_if_newer("k", 1, "again", 60)  # what expired no longer counts as newer
    assert read(cache, "k") == (1, "again")


def test_delete_removes_every_key_given(cache):
    cache.set_many_if_newer([("a", 1, "a"), ("b", 1, "b"), ("c", 1, "c")], 60)
    cache.delete("a", "b", "missing")
    cache.delete()
    assert cache.get_many(["a", "b", "c"]) == [None, None, versioned.encode(1, "c")]
    cache.set_if_newer("a", 1, "back", 60)  # a deleted key takes any version again
    assert read(cache, "a") == (1, "back")


def test_get_many_of_nothing_is_nothing(cache):
    assert cache.get_many([]) == []


# -- read-ahead ------------------------------------------------------------------------------
def test_an_announced_key_is_served_once_from_the_round_trip_it_rode_on(harness, cache):
    cache.set_many_if_newer([("a", 1, "a"), ("b", 2, "b")], 60)
    with cache.read_ahead.scope():
        cache.read_ahead.announce("b")
        assert cache.get_many(["a"]) == [versioned.encode(1, "a")]
        harness.change_behind(cache, "b", versioned.encode(3, "changed"))
        assert read(cache, "b") == (2, "b")  # from the read-ahead: no second round trip
        assert read(cache, "b") == (3, "changed")  # served once; later reads go to the backend


def test_an_announced_key_that_is_missing_is_a_miss_once(harness, cache):
    with cache.read_ahead.scope():
        cache.read_ahead.announce("b")
        cache.get_many(["a"])
        harness.change_behind(cache, "b", versioned.encode(1, "arrived"))
        assert cache.get("b") is None
        assert read(cache, "b") == (1, "arrived")


def test_a_key_asked_for_is_answered_by_get_many_not_read_ahead_twice(harness, cache):
    cache.set_if_newer("a", 1, "a", 60)
    with cache.read_ahead.scope():
        cache.read_ahead.announce("a")
        assert cache.get_many(["a"]) == [versioned.encode(1, "a")]
        harness.change_behind(cache, "a", versioned.encode(2, "changed"))
        assert read(cache, "a") == (2, "changed")


def test_outside_a_scope_announcing_does_nothing(harness, cache):
    cache.set_if_newer("b", 2, "b", 60)
    cache.read_ahead.announce("b")
    cache.get_many(["a"])
    harness.change_behind(cache, "b", versioned.encode(3, "changed"))
    assert read(cache, "b") == (3, "changed")


def test_a_write_in_the_scope_drops_what_was_read_ahead(cache):
    cache.set_many_if_newer([("b", 1, "old"), ("c", 1, "old"), ("d", 1, "old")], 60)
    with cache.read_ahead.scope():
        cache.read_ahead.announce("b", "c", "d")
        cache.get_many(["a"])
        cache.set_if_newer("b", 2, "new", 60)
        cache.set_many_if_newer([("c", 2, "new")], 60)
        cache.delete("d")
        assert (read(cache, "b"), read(cache, "c"), read(cache, "d")) == ((2, "new"), (2, "new"), None)


def test_what_was_read_ahead_does_not_outlive_its_scope(harness, cache):
    cache.set_if_newer("b", 2, "b", 60)
    with cache.read_ahead.scope():
        cache.read_ahead.announce("b")
        cache.get_many(["a"])
    harness.change_behind(cache, "b", versioned.encode(3, "changed"))
    assert read(cache, "b") == (3, "changed")
    with cache.read_ahead.scope():
        assert read(cache, "b") == (3, "changed")


def test_a_scope_belongs_to_its_thread(harness, cache):
    cache.set_if_newer("b", 2, "b", 60)
    with cache.read_ahead.scope():
        cache.read_ahead.announce("b")
        other_thread = threading.Thread(target=cache.get_many, args=(["a"],))
        other_thread.start()
        other_thread.join()
        harness.change_behind(cache, "b", versioned.encode(3, "changed"))
        assert read(cache, "b") == (3, "changed")  # the other thread's round trip did not carry it


def test_a_scope_belongs_to_its_cache(harness, cache):
    second = harness.make()
    cache.set_if_newer("b", 2, "b", 60)
    with cache.read_ahead.scope():
        cache.read_ahead.announce("b")
        second.get_many(["a"])
        harness.change_behind(cache, "b", versioned.encode(3, "changed"))
        assert read(cache, "b") == (3, "changed")


# -- an unreachable backend ------------------------------------------------------------------
def test_ping_answers_while_the_backend_is_up(cache):
    assert cache.ping() is None


def test_while_down_reads_miss_writes_do_not_raise_and_ping_says_so(downable):
    cache = downable.make()
    cache.set_many_if_newer([("a", 1, "a"), ("b", 1, "b")], 60)
    downable.go_down(cache)
    with pytest.raises(CacheUnavailable):
        cache.ping()
    with cache.read_ahead.scope():
        cache.read_ahead.announce("b")
        assert cache.get_many(["a"]) == [None]
        assert cache.get("b") is None
    assert cache.get("a") is None
    cache.set_if_newer("a", 2, "a2", 60)
    cache.set_many_if_newer([("b", 2, "b2")], 60)
    cache.delete("a")


def test_a_write_lost_while_down_is_never_served_stale_once_back(downable):
    cache = downable.make()
    other = downable.other(cache)
    cache.set_many_if_newer([("balance:u1", 1, "[100]"), ("auth:jti:j1", 0, "")], 60)
    downable.go_down(cache)
    cache.set_if_newer("balance:u1", 2, "[150]", 60)  # lost: the backend keeps version 1
    cache.set_if_newer("auth:jti:j1", 1, "", 60)  # a revocation, lost
    downable.come_back(cache)

    # This process never serves the old values again (ping: no back-off hides it)...
    cache.ping()
    assert cache.get_many(["balance:u1", "auth:jti:j1"]) == [None, None]
    # ...and no other process does either, once the backend has been told.
    assert eventually(lambda: other.get_many(["balance:u1", "auth:jti:j1"]) == [None, None])

    def lands_again() -> bool:
        cache.set_if_newer("balance:u1", 3, "[170]", 60)
        return read(cache, "balance:u1") == read(other, "balance:u1") == (3, "[170]")

    assert eventually(lands_again)


def test_a_successful_ping_ends_the_outage_at_once(downable):
    cache = downable.make()
    cache.set_if_newer("a", 1, "a", 60)
    downable.go_down(cache)
    assert cache.get("a") is None
    downable.come_back(cache)
    cache.ping()
    assert read(cache, "a") == (1, "a")  # not a miss for the rest of a back-off


# -- one backend's own promise -----------------------------------------------------------------
def test_the_memory_cache_keeps_at_most_max_entries():
    cache = MemoryCache(max_entries=2)
    cache.set_many_if_newer([("a", 1, "a"), ("b", 1, "b")], 60)
    assert read(cache, "a") == (1, "a")  # "a" is now the most recently used
    cache.set_if_newer("c", 1, "c", 60)
    assert cache.get_many(["a", "b", "c"]) == [versioned.encode(1, "a"), None, versioned.encode(1, "c")]
