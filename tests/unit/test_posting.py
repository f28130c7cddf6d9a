"""A Posting validates itself; the function writer states and checks its precondition."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.infrastructure.posting import FunctionWriter, writer_for
from app.services.ledger import Leg, Posting, TransactionView
from app.vocabulary import TransactionType


def posting(*legs: Leg) -> Posting:
    return Posting(type=TransactionType.TRANSFER, legs=legs, created_by="admin")


def test_a_posting_without_legs_is_refused():
    with pytest.raises(ValueError, match="needs legs"):
        posting()


@pytest.mark.parametrize("amounts", [(0, 0), (-5, 5, 0)])
def test_a_zero_leg_is_refused(amounts):
    with pytest.raises(ValueError, match="none of them may be zero"):
        posting(*(Leg(amount, account_id=f"system:{n}") for n, amount in enumerate(amounts)))


@pytest.mark.parametrize("amounts", [(-5, 4), (5,), (-3, 2, 2)])
def test_legs_that_do_not_sum_to_zero_are_refused(amounts):
    with pytest.raises(ValueError, match="sum to zero"):
        posting(*(Leg(amount, user_id=f"u{n}") for n, amount in enumerate(amounts)))


def test_a_posting_knows_its_amount_and_its_wallets_in_user_order():
    """User order is the lock order that keeps opposite transfers from deadlocking."""
    made = posting(Leg(-7, user_id="zed"), Leg(3, user_id="amy"), Leg(4, account_id="system:redemption"))
    assert made.amount == 7
    assert [leg.user_id for leg in made.wallet_legs] == ["amy", "zed"]
    view = TransactionView.of(made)
    assert (view.id, view.type, view.amount, view.created_at) == (made.id, "transfer", 7, made.created_at)


def test_each_posting_is_a_new_transaction():
    legs = (Leg(-1, user_id="a"), Leg(1, user_id="b"))
    assert posting(*legs).id != posting(*legs).id


def unit_on(dialect: str) -> SimpleNamespace:
    """A unit whose session only tells its dialect: using it for anything else fails."""
    return SimpleNamespace(session=SimpleNamespace(bind=SimpleNamespace(dialect=SimpleNamespace(name=dialect))))


def test_the_function_writer_refuses_a_database_other_than_postgresql():
    transfer = posting(Leg(-1, user_id="a"), Leg(1, user_id="b"))
    with pytest.raises(TypeError, match="needs PostgreSQL"):
        FunctionWriter().write(unit_on("sqlite"), transfer)


@pytest.mark.parametrize(
    ("url", "writer"),
    [
        ("postgresql+psycopg://u@h/db", "function"),
        ("postgresql://u@h/db", "function"),
        ("sqlite:///instance/credit.sqlite3", "step_by_step"),
    ],
)
def test_the_database_url_chooses_the_writer(url, writer):
    assert writer_for(url) == writer
