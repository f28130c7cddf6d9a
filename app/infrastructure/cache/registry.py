"""The cache backends, by the scheme of CREDIT_CACHE_URL.

Login throttling keeps its counters in the `limits` library's storage, chosen by the same
configuration: each entry says which `limits` storage URL goes with its cache URL, so the
counters are shared exactly as widely as the cache (per process with `memory://`, by every
process with Redis). An entry without one (`limits_url=None`) is refused by the
configuration, since login throttling would have nowhere to count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.infrastructure.cache.memory import MemoryCache
from app.infrastructure.cache.port import Cache
from app.infrastructure.cache.redis import RedisCache


@dataclass(frozen=True)
class Backend:
    build: Callable[[str], Cache]  # the cache for a URL of this scheme
    limits_url: Callable[[str], str] | None  # the `limits` storage URL for the same URL


def _same_url(url: str) -> str:
    return url


BACKENDS: dict[str, Backend] = {
    "memory": Backend(MemoryCache.from_url, limits_url=lambda url: "memory://"),
    "redis": Backend(RedisCache, limits_url=_same_url),
    "rediss": Backend(RedisCache, limits_url=_same_url),
}


def backend_for(url: str) -> Backend:
    """The entry for url's scheme; ValueError, naming the known schemes, for any other."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme not in BACKENDS:
        known = ", ".join(f"{name}://" for name in BACKENDS)
        raise ValueError(f"{url!r} names no known cache backend; known schemes: {known}")
    return BACKENDS[scheme]


def check_cache_url(url: str) -> None:
    """Raise ValueError unless url names a known backend that login throttling can count in."""
    limits_storage_url(url)


def build_cache(url: str) -> Cache:
    return backend_for(url).build(url)


def limits_storage_url(url: str) -> str:
    """The `limits` storage URL login throttling uses alongside the cache at url."""
    limits_url = backend_for(url).limits_url
    if limits_url is None:
        scheme = url.partition("://")[0]
        raise ValueError(f"the {scheme}:// cache backend names no `limits` storage, which login throttling needs")
    return limits_url(url)
