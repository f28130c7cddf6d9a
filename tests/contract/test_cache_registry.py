"""The cache registry: CREDIT_CACHE_URL is checked against it, build_cache() and login
throttling's `limits` storage come from the same entry."""

from __future__ import annotations

import pytest
from limits.storage import storage_from_string

from app.config import ConfigError, load_settings
from app.infrastructure.cache import BACKENDS, Cache, build_cache, limits_storage_url
from app.infrastructure.cache.registry import Backend
from app.testing import FakeCache

SAMPLE_URLS = {"memory": "memory://", "redis": "redis://127.0.0.1:1/0", "rediss": "rediss://127.0.0.1:1/0"}


def settings(tmp_path, cache_url: str):
    return load_settings(environ={}, database_url="sqlite://", instance_path=str(tmp_path), cache_url=cache_url)


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_every_backend_builds_a_cache_and_names_a_limits_storage(scheme, tmp_path):
    url = SAMPLE_URLS[scheme]  # a KeyError here: give the new backend a sample URL
    assert settings(tmp_path, url).cache_url == url
    cache = build_cache(url)  # builds without reaching the backend
    try:
        assert isinstance(cache, Cache)
    finally:
        cache.close()
    storage_from_string(limits_storage_url(url))  # `limits` understands it


@pytest.mark.parametrize("url", ["memcached://127.0.0.1:11211", "redis:/no-slashes", "127.0.0.1:6379", ""])
def test_an_unknown_cache_url_is_refused_naming_the_known_schemes(url, tmp_path):
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, url)
    assert "CREDIT_CACHE_URL" in str(refused.value)
    assert all(f"{scheme}://" in str(refused.value) for scheme in BACKENDS)


def test_a_backend_without_a_limits_storage_is_refused_for_login_throttling(monkeypatch, tmp_path):
    monkeypatch.setitem(BACKENDS, "fake", Backend(lambda url: FakeCache(), limits_url=None))
    with pytest.raises(ConfigError, match="login throttling"):
        settings(tmp_path, "fake://")
    assert isinstance(build_cache("fake://"), FakeCache)  # the entry itself is fine


def test_memory_throttling_counts_in_memory_and_redis_in_the_same_redis():
    assert limits_storage_url("memory://") == "memory://"
    assert limits_storage_url("redis://cache.internal:6380/2") == "redis://cache.internal:6380/2"
