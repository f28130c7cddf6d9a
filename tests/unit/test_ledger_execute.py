"""Ledger.execute over fakes: the unit of work, the insert-first idempotency record, the
retry on a taken key, the fallback to the step-by-step writer, and stored refusals."""

from __future__ import annotations

import json

import pytest

from app.infrastructure.posting import InactiveUser, KeyTaken, NotAsSent, Overdrawn, UnknownUser
from app.services.errors import (
    AlreadyReversed,
    IdempotencyConflict,
    IdempotencyKeyReused,
    InsufficientFunds,
    NotFound,
    ValidationFailed,
)
from app.services.idempotency import IdempotencyRequest, OutcomeKind
from app.services.ledger import Ledger, Leg, Posting
from app.vocabulary import TransactionType
from tests.unit.fakes import FakeBalances, FakeDatabase, FakeIdempotencyStore, FakeRenderer, FakeWriter, key_taken


class World:
    """A ledger on fakes, with a function-writer-like writer first and a step-by-step one after it."""

    def __init__(self, fast: FakeWriter | None = None, slow: FakeWriter | None = None, store=FakeIdempotencyStore):
        self.db = FakeDatabase()
        self.store = store(self.db)
        self.balances = FakeBalances()
        self.fast, self.slow = fast or FakeWriter(key_taken=NotAsSent), slow or FakeWriter()
        self.ledger = Ledger(self.db, self.store, self.balances, FakeRenderer(), self.fast, self.slow)
        self.prepared: list[Posting] = []

    def transfer(self, amount: int = 5):
        """An operation that prepares a transfer from alice to bob (a fresh posting each call)."""

        def prepare(uow) -> Posting:
            made = Posting(
                type=TransactionType.TRANSFER,
                legs=(Leg(-amount, user_id="alice", field="from_user_id"), Leg(amount, user_id="bob", active=True)),
                created_by="alice",
                from_user_id="alice",
                to_user_id="bob",
            )
            self.prepared.append(made)
            return made

        return prepare


def key(body: dict | None = None, name: str = "k1") -> IdempotencyRequest:
    return IdempotencyRequest.of("alice", name, "POST", "/transactions", body or {"amount": 5})


# -- one posting, one unit of work ---------------------------------------------------------


def test_without_a_key_the_posting_is_written_once_and_committed_once():
    world = World()
    outcome = world.ledger.execute(world.transfer())
    (written,) = world.prepared
    assert world.fast.writes == [(written, None)] and world.slow.writes == []
    assert world.fast.finals == [True]  # nothing else to write: the writer may commit it alone
    assert world.db.postings == [written] and world.db.commits == 1 and world.db.records == {}
    assert outcome.kind is OutcomeKind.CREATED and not outcome.replayed
    assert outcome.body == {"id": written.id, "type": "transfer", "amount": 5}
    # Its transaction.posted event commits with it: the rendered body, the balances after.
    ((event),) = world.db.events
    assert (event.type, event.target_type, event.target_id) == ("transaction.posted", "transaction", written.id)
    assert event.data == {"transaction": outcome.body, "balances": {"alice": 95, "bob": 105}}
    # The new balances reach the cache only after the commit, stamped with the posting's time.
    assert [(b.user_id, b.balance, b.updated_at) for b in world.balances.stored] == [
        ("alice", 95, written.created_at),
        ("bob", 105, written.created_at),
    ]


def test_a_first_request_sends_its_record_with_the_posting():
    world = World()
    outcome = world.ledger.execute(world.transfer(), key())
    ((written, record),) = world.fast.writes
    assert (record["user_id"], record["key"], record["status_code"]) == ("alice", "k1", 201)
    assert world.store.saves == []  # nothing saved apart from the posting
    assert world.fast.finals == [True]
    assert world.db.records[("alice", "k1")] == record and world.db.postings == [written]
    assert outcome.kind is OutcomeKind.CREATED and not outcome.replayed


# -- a key already taken --------------------------------------------------------------------


def test_a_taken_key_replays_the_stored_outcome_and_writes_nothing_more():
    world = World()
    first = world.ledger.execute(world.transfer(), key())
    again = world.ledger.execute(world.transfer(), key())
    assert again.replayed and (again.kind, again.body) == (first.kind, first.body)
    assert len(world.db.postings) == 1 and world.db.commits == 1
    # The retry was sent (insert first, no lookup before it), refused by the key, then redone
    # step by step, which found the key taken: only then was the record read.
    assert len(world.fast.writes) == 2 and len(world.slow.writes) == 1


def test_a_taken_key_with_a_different_body_is_refused_and_writes_nothing():
    world = World()
    world.ledger.execute(world.transfer(), key({"amount": 5}))
    with pytest.raises(IdempotencyKeyReused):
        world.ledger.execute(world.transfer(9), key({"amount": 9}))
    assert len(world.db.postings) == 1 and world.db.commits == 1


def test_an_expired_key_is_taken_over_once():
    world = World()
    world.ledger.execute(world.transfer(), key({"amount": 5}))
    world.db.expire("alice", "k1")
    outcome = world.ledger.execute(world.transfer(9), key({"amount": 9}))
    assert outcome.kind is OutcomeKind.CREATED and not outcome.replayed
    assert len(world.db.postings) == 2 and world.db.postings[1].amount == 9
    # The take-over is not a first claim: the record does not ride with the posting, and
    # is saved as a take-over of the expired one.
    assert world.fast.writes[-1][1] is None and world.store.saves == [("k1", True)]
    assert world.fast.finals[-1] is False  # the take-over's save follows the posting in its unit
    stored = json.loads(world.db.records[("alice", "k1")]["response_body"])
    assert stored == {"id": world.prepared[-1].id, "type": "transfer", "amount": 9}


class TakenOverEveryTime(FakeIdempotencyStore):
    """Another request takes over the expired key each time before this one can (the record
    it leaves still reads as expired, say its clock is behind)."""

    def save(self, session, request, outcome, take_over=False) -> None:
        if take_over:
            self.saves.append((request.key, take_over))
            raise key_taken()
        super().save(session, request, outcome, take_over)


def test_a_key_another_request_takes_over_first_is_a_conflict_not_a_loop():
    world = World(store=TakenOverEveryTime)
    world.ledger.execute(world.transfer(), key())
    world.db.expire("alice", "k1")
    with pytest.raises(IdempotencyConflict):
        world.ledger.execute(world.transfer(), key())
    assert world.store.saves == [("k1", True)]  # one take-over tried, then refused
    assert len(world.db.postings) == 1


def test_a_key_whose_record_vanished_is_a_conflict():
    """A key that fails the insert but has no record to read (it was purged meanwhile)."""
    world = World(fast=FakeWriter(refuse=KeyTaken()))
    with pytest.raises(IdempotencyConflict):
        world.ledger.execute(world.transfer(), key())
    assert world.db.commits == 0


# -- the first writer, then step by step when it was not written as sent ---------------------------


def test_a_posting_not_written_as_sent_is_redone_step_by_step():
    world = World(fast=FakeWriter(refuse=NotAsSent()))
    outcome = world.ledger.execute(world.transfer(), key())
    first, second = world.prepared  # prepared again for the second attempt
    assert [posting for posting, _ in world.fast.writes] == [first]
    assert [posting for posting, _ in world.slow.writes] == [second]
    assert world.slow.writes[0][1]["key"] == "k1"  # a first claim still rides with the posting
    assert world.db.postings == [second] and world.db.commits == 1
    assert outcome.body["id"] == second.id


def test_on_one_writer_alone_a_refusal_is_not_retried():
    """SQLite's wiring: the step-by-step writer goes first and nothing falls back to it."""
    step_by_step = FakeWriter(refuse=Overdrawn(balance=3, requested=5))
    world = World(fast=step_by_step, slow=step_by_step)
    with pytest.raises(InsufficientFunds):
        world.ledger.execute(world.transfer())
    assert len(step_by_step.writes) == 1


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refused", "error", "details"),
    [
        (UnknownUser(), NotFound, {}),
        (InactiveUser("to_user_id"), ValidationFailed, {"to_user_id": ["the user is not active"]}),
    ],
)
def test_a_refusal_is_told_in_the_domains_words_and_not_stored(refused, error, details):
    world = World(fast=FakeWriter(refuse=NotAsSent()), slow=FakeWriter(refuse=refused))
    with pytest.raises(error) as raised:
        world.ledger.execute(world.transfer(), key())
    assert raised.value.details == details
    assert world.db.commits == 0 and world.db.records == {}


def test_without_a_key_a_stored_refusal_is_raised():
    world = World(slow=FakeWriter(refuse=Overdrawn(balance=3, requested=5)), fast=FakeWriter(refuse=NotAsSent()))
    with pytest.raises(InsufficientFunds) as raised:
        world.ledger.execute(world.transfer())
    assert raised.value.details == {"balance": 3, "requested": 5}
    assert world.db.commits == 0


def already_reversed(uow):
    raise AlreadyReversed()


@pytest.mark.parametrize("where", ["writer", "operation"])
def test_refusals_that_are_business_outcomes_are_stored_under_the_key(where):
    overdrawn = FakeWriter(refuse=Overdrawn(balance=3, requested=5))
    world = World(fast=FakeWriter(refuse=NotAsSent()), slow=overdrawn)
    operation = world.transfer() if where == "writer" else already_reversed
    code = "insufficient_funds" if where == "writer" else "already_reversed"
    first = world.ledger.execute(operation, key())
    assert first.kind is OutcomeKind.REFUSED and first.body["error"]["code"] == code and not first.replayed
    # Only the refusal was committed: its record (stored as the 409 rows have always held).
    assert world.db.postings == [] and world.db.commits == 1
    assert world.db.records[("alice", "k1")]["status_code"] == 409 and world.store.saves == [("k1", False)]
    again = world.ledger.execute(world.transfer(), key())
    assert again.replayed and (again.kind, again.body) == (first.kind, first.body)


def test_a_retry_of_a_request_that_went_through_answers_as_it_did_even_if_now_refused():
    world = World()
    first = world.ledger.execute(world.transfer(), key())
    world.fast.refuse, world.slow.refuse = NotAsSent(), UnknownUser()  # say, the payee was deleted since
    again = world.ledger.execute(world.transfer(), key())
    assert again.replayed and again.body == first.body
    assert len(world.db.postings) == 1
