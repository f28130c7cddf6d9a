"""Cached balances, versioned by the wallet row's version so a stale value never wins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import orjson

from app.infrastructure.cache import Cache, versioned


@dataclass(frozen=True)
class Balance:
    user_id: str
    balance: int
    updated_at: datetime
    version: int


class BalanceCache:
    def __init__(self, cache: Cache, ttl_seconds: float) -> None:
        self._cache = cache
        self._ttl = ttl_seconds

    @staticmethod
    def key(user_id: str) -> str:
        return f"balance:{user_id}"

    def read_ahead(self, user_id: str) -> None:
        """This request will read user_id's balance: fetch it with the next cache round trip."""
        self._cache.read_ahead.announce(self.key(user_id))

    def get(self, user_id: str) -> Balance | None:
        stored = versioned.decode(self._cache.get(self.key(user_id)))
        if stored is None:
            return None
        version, payload = stored
        balance, updated_at = orjson.loads(payload)  # a fifth of json.loads' time, on every balance read
        if type(balance) is not int:  # beyond 64 bits orjson reads a float: not a balance to serve
            return None
        return Balance(user_id, balance, datetime.fromisoformat(updated_at), version)

    def store(self, balance: Balance) -> None:
        self.store_many([balance])

    def store_many(self, balances: list[Balance]) -> None:
        """Every balance a posting changed, in one cache round trip."""
        self._cache.set_many_if_newer(
            [(self.key(b.user_id), b.version, json.dumps([b.balance, b.updated_at.isoformat()])) for b in balances],
            self._ttl,
        )
