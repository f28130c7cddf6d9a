"""How the backbone paces itself: batches, leases, retries with backoff and jitter, sweeps."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class EventPolicy:
    """The CREDIT_EVENTS_* settings (README, "Configuration")."""

    batch_size: int = 100  # deliveries handled per transaction (one SAVEPOINT each)
    batch_seconds: float = 0.5  # a batch commits after this long even if not full
    relay_batch: int = 500  # events stamped per relay transaction
    lease_seconds: float = 30.0  # a drain's hold on its module, renewed every batch
    max_attempts: int = 10  # then `dead`
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 600.0
    sweep_seconds: float = 5.0  # a worker's own pass: relay, due retries, expired leases
    relay_delay_seconds: float = 0.1  # a process wakes the relay at most this often (docs/events.md says why)

    def next_attempt(self, attempts: int, now: datetime, rng: random.Random | None = None) -> datetime | None:
        """When to try again after `attempts` failed attempts; None when they are all used.

        Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempts-1))],
        so modules failing together do not retry in lockstep.
        """
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempts - 1))
        return now + timedelta(seconds=(rng or random).uniform(0, ceiling))
