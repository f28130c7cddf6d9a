"""Password hashing with Argon2id (memory-hard); verification costs the same for unknown users."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, time_cost: int = 2, memory_cost: int = 19 * 1024, parallelism: int = 1) -> None:
        # OWASP's Argon2id baseline: 19 MiB, 2 iterations, 1 lane.
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self._dummy = self._hasher.hash("not-a-real-password-used-for-timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True if it matches; an absent hash is checked against a dummy so timing is alike."""
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
