"""The cache: Redis or in-process memory, behind one interface. It only ever holds what
the database can rebuild, so every operation degrades to a miss or a no-op when the
backend is unreachable.

- port.py: the `Cache` protocol the app uses, and CacheUnavailable (raised by ping only).
- versioned.py: the one encoding of a versioned value and the "only newer wins" rule
  (with its Lua twin for Redis). BalanceCache and AuthStateCache read through decode().
- read_ahead.py: the request-scoped read-ahead every backend serves (one Redis round trip
  per balance request).
- memory.py, redis.py: the backends; resync.py: the lost-write memory Redis needs.
- registry.py: backends by URL scheme; build_cache() and the configuration use it, and
  login throttling gets its `limits` storage URL from the same entry.

Adding a backend is one class, one registry line and a green contract suite:
1. a class satisfying `Cache`: it owns a ReadAhead and consults it as read_ahead.py says,
   stores versioned values with versioned.encode/is_newer, misses and drops writes while
   its backend is down, and never serves a value a lost write should have replaced;
2. one line in registry.BACKENDS, with the `limits` storage URL that goes with it;
3. a harness in tests/contract/cache_backends.py, listed in HARNESSES (and a sample URL in
   tests/contract/test_cache_registry.py); tests/contract/ must pass.
"""

from app.infrastructure.cache.memory import MemoryCache
from app.infrastructure.cache.port import Cache, CacheUnavailable
from app.infrastructure.cache.read_ahead import ReadAhead
from app.infrastructure.cache.redis import RedisCache
from app.infrastructure.cache.registry import BACKENDS, build_cache, check_cache_url, limits_storage_url

__all__ = [
    "BACKENDS",
    "Cache",
    "CacheUnavailable",
    "MemoryCache",
    "ReadAhead",
    "RedisCache",
    "build_cache",
    "check_cache_url",
    "limits_storage_url",
]
