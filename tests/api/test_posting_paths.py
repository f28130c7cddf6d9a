"""A posting goes to the writer chosen for the database (PostgreSQL: one function call);
only one that did not go through as sent is redone step by step, and either way the answer
and the books are what the step-by-step path alone gives. The writers are observed through
recording wrappers put on the container's writer providers."""

from __future__ import annotations

import pytest
from dependency_injector import providers

from app.testing import assert_error, ledger_snapshot
from tests.helpers import balance_of, deposit


class RecordingWriter:
    """A real posting writer that notes (its name, the posting's type) for each write."""

    def __init__(self, writer, name: str, log: list[tuple[str, str]]) -> None:
        self._writer, self._name, self._log = writer, name, log

    def write(self, uow, posting, record=None, event=None, final=False):
        self._log.append((self._name, posting.type))
        return self._writer.write(uow, posting, record, event, final)


@pytest.fixture(autouse=True)
def writes(container) -> list[tuple[str, str]]:
    """(writer, posting type) of every write, in order; installed before the app is built."""
    log: list[tuple[str, str]] = []
    for name in ("function", "step_by_step"):
        provider = getattr(container, f"{name}_writer")
        provider.override(providers.Singleton(RecordingWriter, providers.Singleton(provider.provides), name, log))
    return log


@pytest.fixture
def first_writer(app) -> str:
    """The writer containers.py chooses for this database."""
    return "function" if app.container.database().dialect == "postgresql" else "step_by_step"


def transfer(client, headers, source_id, target_id, amount, key=None):
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/transactions",
        json={"from_user_id": source_id, "to_user_id": target_id, "amount": amount},
        headers={**headers, **extra},
    )


def test_postings_that_go_through_are_written_once_by_the_chosen_writer(client, people, writes, first_writer):
    admin, alice_h, alice, bob = people.admin.headers, people.alice.headers, people.alice.id, people.bob.id
    deposit(client, admin, alice, 100)
    assert transfer(client, alice_h, alice, bob, 30, key="k1").status_code == 201
    assert client.post("/wallet/withdraw", json={"user_id": alice, "amount": 5}, headers=alice_h).status_code == 201
    assert writes == [(first_writer, "deposit"), (first_writer, "transfer"), (first_writer, "withdrawal")]
    assert balance_of(client, admin, alice) == 65 and balance_of(client, admin, bob) == 30


def test_a_refused_posting_is_redone_step_by_step_and_leaves_nothing(app, client, people, writes, first_writer):
    admin, alice_h, alice, bob = people.admin.headers, people.alice.headers, people.alice.id, people.bob.id
    deposit(client, admin, alice, 10)
    before = ledger_snapshot(app)
    writes.clear()
    refused = transfer(client, alice_h, alice, bob, 11, key="k2")
    assert assert_error(refused, 409, "insufficient_funds")["details"] == {"balance": 10, "requested": 11}
    # The function writer cannot tell why; the step-by-step one finds out (on SQLite it is the only one).
    expected = [("step_by_step", "transfer")]
    if first_writer == "function":
        expected.insert(0, ("function", "transfer"))
    assert writes == expected
    # Only the stored refusal was written; the attempt sent in one go left no trace.
    assert ledger_snapshot(app) == {**before, "idempotency_keys": before["idempotency_keys"] + 1}


def test_a_replayed_key_answers_from_the_record_and_moves_money_once(app, client, people):
    admin, alice_h, alice, bob = people.admin.headers, people.alice.headers, people.alice.id, people.bob.id
    deposit(client, admin, alice, 100)
    first = transfer(client, alice_h, alice, bob, 40, key="same")
    again = transfer(client, alice_h, alice, bob, 40, key="same")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert balance_of(client, admin, alice) == 60 and balance_of(client, admin, bob) == 40


@pytest.mark.parametrize("field", ["to_user_id", "user_id"])
def test_an_id_longer_than_any_stored_is_an_unknown_user_not_an_error(app, client, people, field):
    """Sent in one go, such an id reaches an INSERT before anything refuses it (PostgreSQL
    then rejects the value itself); it must still be the 404 the step-by-step path gives."""
    admin, alice_h, alice = people.admin.headers, people.alice.headers, people.alice.id
    deposit(client, admin, alice, 100)
    before = ledger_snapshot(app)
    stranger = "0" * 63
    if field == "to_user_id":
        response = transfer(client, alice_h, alice, stranger, 10, key="long-id")
    else:
        response = client.post(
            "/wallet/deposit", json={"user_id": stranger, "amount": 10}, headers={**admin, "Idempotency-Key": "long-id"}
        )
    assert_error(response, 404, "not_found")
    assert ledger_snapshot(app) == before
