"""Password and sign-up throttling on the `limits` library's storage. Its URL comes from the
cache backend's registry entry (app.infrastructure.cache.registry), so the counters live
where the cache does: with Redis the limits hold across every server process.

Every password check (login, and `current_password` on a profile change) is counted
*before* the password is verified, with one atomic increment per bucket, so concurrent
attempts cannot slip past a limit while others are still being verified:

- the account's bucket, keyed by the resolved user (its username and its email are one
  account); an identifier that names nobody gets a bucket keyed by its text, so answers
  and timing are the same whether it exists or not;
- the client address's bucket (CLIENT_FACTOR times as large), so one address cannot try
  a few passwords against many accounts. A successful check gives its slot back.

A correct password gets through while only the account's bucket is exhausted, if it comes
from an address this account logged in from before (remembered for KNOWN_ADDRESS_SECONDS):
five wrong guesses by anyone do not lock the owner out, and other addresses get no more
guesses. Each window is fixed: it starts with the bucket's first attempt.

If the storage fails (Redis down) the throttle lets requests through and logs a warning:
logins keep working, unthrottled, until it is back.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from limits.storage import Storage, storage_from_string

from app.services.errors import RateLimited

log = logging.getLogger(__name__)

CLIENT_FACTOR = 4  # one client (address) may fail for a few accounts before it is throttled
KNOWN_ADDRESS_SECONDS = 30 * 86400


def _key(value: str) -> str:
    # surrogatepass: an unencodable identifier still gets its own bucket instead of an error
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Admission:
    """A password check allowed to run, and what to settle once its outcome is known."""

    account: str
    client: str
    over_account_limit: bool = False


class LoginThrottle:
    def __init__(
        self,
        storage_url: str,
        max_failures: int,
        window_seconds: int,
        registrations_per_address: int = 10,
        registration_window_seconds: int = 3600,
    ) -> None:
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if storage_url.startswith("redis") else {}
        storage = storage_from_string(storage_url, **options)
        if not isinstance(storage, Storage):  # an async+ scheme: its calls would return coroutines
            raise ValueError(f"the login throttle needs a synchronous limits storage, not {storage_url!r}")
        self._storage = storage
        self._max_failures = max_failures
        self._window = window_seconds
        self._registrations = registrations_per_address
        self._registration_window = registration_window_seconds

    @staticmethod
    def account_key(user_id: str | None, identifier: str) -> str:
        """The account bucket: the user it resolved to, else the identifier's own text."""
        return _key(f"user:{user_id}" if user_id else f"name:{identifier.lower()}")

    def _take(self, bucket: str, limit: int, window: int) -> None:
        """Count one attempt in `bucket`; RateLimited if that makes more than `limit` in its window."""
        if self._storage.incr(bucket, window) > limit:
            raise RateLimited(max(1, math.ceil(self._storage.get_expiry(bucket) - time.time())))

    def admit(self, account: str, client: str) -> Admission:
        """Count a password check before it runs; RateLimited when it may not run (see the module doc)."""
        client_key = _key(client)
        try:
            self._take(f"login-client/{client_key}", self._max_failures * CLIENT_FACTOR, self._window)
            try:
                self._take(f"login-account/{account}", self._max_failures, self._window)
            except RateLimited:
                if not self._storage.get(f"login-known/{account}/{client_key}"):
                    raise
                return Admission(account, client_key, over_account_limit=True)
        except RateLimited:
            raise
        except Exception as exc:  # the limiter's backend is down: serve, and say so in the log
            log.warning("login throttle unavailable: %s", exc)
        return Admission(account, client_key)

    def succeeded(self, admission: Admission) -> None:
        """The password was right: give the client's slot back, remember the address, and
        forget the account's failures (unless it is over its limit: the owner getting in
        from a known address must not hand anyone else a fresh set of guesses)."""
        try:
            self._storage.incr(f"login-client/{admission.client}", self._window, amount=-1)
            known = f"login-known/{admission.account}/{admission.client}"
            self._storage.clear(known)  # restart its expiry: remembered from the latest login
            self._storage.incr(known, KNOWN_ADDRESS_SECONDS)
            if not admission.over_account_limit:
                self._storage.clear(f"login-account/{admission.account}")
        except Exception as exc:
            log.warning("login throttle unavailable: %s", exc)

    def admit_registration(self, client: str) -> None:
        """Count a sign-up from `client` (each costs a password hash); RateLimited past the limit."""
        try:
            self._take(f"register-client/{_key(client)}", self._registrations, self._registration_window)
        except RateLimited:
            raise
        except Exception as exc:
            log.warning("login throttle unavailable: %s", exc)

    def ping(self) -> bool:
        try:
            return bool(self._storage.check())
        except Exception:
            return False
