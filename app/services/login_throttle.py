"""Login throttling on the `limits` library. Its storage URL comes from the cache backend's
registry entry (app.infrastructure.cache.registry), so the counters live where the cache
does: with Redis the limit holds across every server process."""

from __future__ import annotations

import hashlib
import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.services.errors import RateLimited

log = logging.getLogger(__name__)

CLIENT_FACTOR = 4  # one client (address) may fail for a few accounts before it is throttled


def _key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, storage_url: str, max_failures: int, window_seconds: int) -> None:
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if storage_url.startswith("redis") else {}
        self._storage = storage_from_string(storage_url, **options)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._account = RateLimitItemPerSecond(max_failures, window_seconds)
        self._client = RateLimitItemPerSecond(max_failures * CLIENT_FACTOR, window_seconds)

    def _checks(self, account: str, client: str):
        return ((self._account, "login-account", _key(account.lower())), (self._client, "login-client", _key(client)))

    def check(self, account: str, client: str) -> None:
        """Raise RateLimited while the account or the client is over its failure budget."""
        try:
            for item, namespace, key in self._checks(account, client):
                if not self._limiter.test(item, namespace, key):
                    reset_at, _ = self._limiter.get_window_stats(item, namespace, key)
                    raise RateLimited(max(1, math.ceil(reset_at - time.time())))
        except RateLimited:
            raise
        except Exception as exc:  # the limiter's backend is down: serve, and say so in the log
            log.warning("login throttle unavailable: %s", exc)

    def failed(self, account: str, client: str) -> None:
        try:
            for item, namespace, key in self._checks(account, client):
                self._limiter.hit(item, namespace, key)
        except Exception as exc:
            log.warning("login throttle unavailable: %s", exc)

    def succeeded(self, account: str) -> None:
        try:
            self._limiter.clear(self._account, "login-account", _key(account.lower()))
        except Exception as exc:
            log.warning("login throttle unavailable: %s", exc)

    def ping(self) -> bool:
        try:
            return bool(self._storage.check())
        except Exception:
            return False
