"""The balance read writes its body by hand (current_balance_body); it must be BalanceSchema's dump."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.schemas.ledger import BalanceSchema, current_balance_body
from app.services.balance_cache import Balance


@pytest.mark.parametrize(
    "updated_at",
    [
        datetime(2026, 11, 29, 19, 31, 27, 672947, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),  # no microseconds: isoformat leaves them out
        datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
@pytest.mark.parametrize("amount", [0, 1, 1_000_000_000_000])
def test_the_hand_written_body_is_the_schemas_dump(updated_at, amount):
    balance = Balance("5d1e9a7c-3b2f-4e8d-8c6a-1f0b2e4d6a9c", amount, updated_at, 7)
    body = current_balance_body(balance)
    assert body == BalanceSchema().dump(balance)
    assert list(body) == list(BalanceSchema().dump(balance))  # same fields in the same order
