"""The balance cache reads back what it stored, and never serves a balance it cannot read exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from app.infrastructure.cache import versioned
from app.infrastructure.cache.memory import MemoryCache
from app.services.balance_cache import Balance, BalanceCache

WHEN = datetime(2026, 11, 29, 23, 21, 40, 189125, tzinfo=UTC)


def test_a_stored_balance_reads_back_the_same():
    balances = BalanceCache(MemoryCache(), ttl_seconds=30)
    stored = Balance("u-1", 1_000_000_000_000, WHEN, 7)
    balances.store(stored)
    assert balances.get("u-1") == stored
    assert balances.get("u-2") is None


def test_a_balance_beyond_64_bits_is_a_miss_not_a_rounded_float():
    cache = MemoryCache()
    balances = BalanceCache(cache, ttl_seconds=30)
    huge = 2**64 + 1
    cache.set_if_newer(BalanceCache.key("u-1"), 3, f'[{huge}, "{WHEN.isoformat()}"]', 30)
    assert versioned.decode(cache.get(BalanceCache.key("u-1"))) is not None  # it is there
    assert balances.get("u-1") is None  # and read as a miss: the database answers exactly
