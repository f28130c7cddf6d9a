"""On PostgreSQL a transfer is one round trip, its idempotency record and its event
included: one call of credit_post() (migration 0011) as its own transaction, with no BEGIN
and no COMMIT; the connection goes back to the pool out of autocommit. A posting whose unit
already holds a transaction (a reversal locks its original first) joins it; a refused one
is redone one statement at a time."""

from __future__ import annotations

import json

import psycopg
import pytest

from app import create_app
from app.config import load_settings
from app.infrastructure.posting import array_literal
from tests import backends
from tests.helpers import bearer, deposit, ledger_snapshot, login, make_admin, user_with_token

pytestmark = pytest.mark.integration


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, int | None]]:
    """(text of each statement psycopg executes, id of the pipeline it went out in); and
    "<round trip>" each time the client waits for the server: a pipeline's sync, a statement
    outside a pipeline, or a connection-level commit that sends COMMIT."""
    log: list[tuple[str, int | None]] = []
    execute = psycopg.Cursor.execute
    sync = psycopg._pipeline_base.BasePipeline._enqueue_sync
    commit = psycopg.Connection.commit

    def recording(cursor, query, params=None, **kwargs):
        pipeline = cursor.connection._pipeline
        log.append((" ".join(str(query).split()), id(pipeline) if pipeline is not None else None))
        if pipeline is None:
            log.append((ROUND_TRIP, None))
        return execute(cursor, query, params, **kwargs)

    def syncing(pipeline):
        log.append((ROUND_TRIP, id(pipeline)))
        return sync(pipeline)

    def committing(connection):
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            log.append((ROUND_TRIP, None))
        return commit(connection)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    monkeypatch.setattr(psycopg._pipeline_base.BasePipeline, "_enqueue_sync", syncing)
    monkeypatch.setattr(psycopg.Connection, "commit", committing)
    return log


ROUND_TRIP = "<round trip>"


@pytest.fixture
def app(tmp_path):
    """The app on a throwaway PostgreSQL database (the default queue: nothing relays in-line)."""
    with backends.throwaway_postgres() as database_url:
        settings = load_settings(
            environ={},
            database_url=database_url,
            cache_url="memory://",
            secret_key="test-secret-key-0123456789abcdef",
            instance_path=str(tmp_path),
        )
        made = create_app(settings)
        try:
            yield made
        finally:
            made.module_manager.shutdown()


@pytest.fixture
def admin(app) -> dict:
    make_admin(app)
    return bearer(login(app.test_client(), "admin"))


def posted_event(app, transaction_id: str) -> dict:
    """The outbox row of transaction_id's transaction.posted event, its data parsed."""
    from sqlalchemy import text

    with app.container.database().engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM outbox_events WHERE type = 'transaction.posted' AND target_id = :id"),
            {"id": transaction_id},
        ).mappings()
        (row,) = list(rows)
    return {**row, "data": json.loads(row["data"])}


def wake_ups(app) -> list[int]:
    """One item per commit that woke the relay from now on."""
    woken: list[int] = []
    app.container.database().on_events_committed(lambda: woken.append(1))
    return woken


def test_a_transfer_is_one_statement_committing_itself_and_a_refusal_falls_back(app, admin, sent):
    client = app.test_client()
    alice, alice_h = user_with_token(client, "alice")
    bob, _ = user_with_token(client, "bob")
    deposit(client, admin, alice["id"], 50)

    body = {"from_user_id": alice["id"], "to_user_id": bob["id"], "amount": 20}
    woken = wake_ups(app)
    sent.clear()
    made = client.post("/transactions", json=body, headers={**alice_h, "Idempotency-Key": "a"})
    assert made.status_code == 201
    writes = [(sql, pipeline) for sql, pipeline in sent if "credit_post" in sql or sql == "COMMIT"]
    assert len(writes) == 1 and writes[0][1] is None, sent
    # Everything rode in that one statement, and it was the only wait: no BEGIN, no
    # COMMIT, no pipeline.
    waits = [sql for sql, _ in sent if sql == ROUND_TRIP]
    assert waits == [ROUND_TRIP], sent
    assert not any(sql in ("BEGIN", "COMMIT") for sql, _ in sent)
    snapshot = ledger_snapshot(app)
    assert snapshot["idempotency_keys"] == 1
    # The event went out with it, each wallet's balance after in its data, and the
    # commit woke the relay.
    event = posted_event(app, made.get_json()["id"])
    assert event["data"] == {"transaction": made.get_json(), "balances": {alice["id"]: 30, bob["id"]: 20}}
    assert (event["actor_type"], event["actor_id"]) == ("user", alice["id"])
    assert event["request_id"] == made.headers["X-Request-ID"] and event["sequence"] is None
    assert woken == [1]
    # The replay answers from the record the statement wrote.
    again = client.post("/transactions", json=body, headers={**alice_h, "Idempotency-Key": "a"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == made.get_json()

    before = ledger_snapshot(app)
    sent.clear()
    refused = client.post("/transactions", json={**body, "amount": 31}, headers={**alice_h, "Idempotency-Key": "b"})
    assert refused.status_code == 409
    # Sent as one statement, refused inside it (nothing stays), then redone one
    # statement at a time, which found out why.
    assert any("credit_post" in sql for sql, _ in sent)
    assert any(sql.startswith("UPDATE accounts") for sql, _ in sent)
    assert ledger_snapshot(app) == {**before, "idempotency_keys": before["idempotency_keys"] + 1}


def test_the_connection_leaves_autocommit_whatever_the_statement_did(app):
    """committing_alone() puts the driver in autocommit for one statement: afterwards, and
    after a statement that failed, the connection is back in transactions (else the next
    unit on it would commit each statement as it went)."""
    from sqlalchemy import text

    database = app.container.database()
    with database.unit_of_work() as uow:
        assert uow.pristine()
        with uow.committing_alone() as connection:
            driver = connection.connection.driver_connection
            connection.execute(text("CREATE TABLE alone (n integer CHECK (n > 0))"))
        assert driver.autocommit is False
        assert uow.pristine()  # the session itself was never used
    with database.unit_of_work() as uow, pytest.raises(Exception, match="check"):
        with uow.committing_alone() as connection:
            driver = connection.connection.driver_connection
            connection.execute(text("INSERT INTO alone VALUES (1), (-1)"))
    assert driver.autocommit is False
    with database.unit_of_work() as uow:
        assert uow.session.connection().connection.driver_connection.autocommit is False
        uow.session.execute(text("INSERT INTO alone VALUES (2)"))
        # Not committed: leaving the unit rolls it back, as it would not in autocommit.
    with database.unit_of_work() as uow:
        assert uow.session.execute(text("SELECT count(*) FROM alone")).scalar() == 0


def test_a_reversal_joins_the_transaction_its_lock_began(app, admin, sent):
    client = app.test_client()
    alice, _ = user_with_token(client, "alice")
    made = deposit(client, admin, alice["id"], 50)
    woken = wake_ups(app)
    sent.clear()
    reversal = client.post(f"/transactions/{made['id']}/reverse", json={}, headers=admin)
    assert reversal.status_code == 201
    call = next(n for n, (sql, _) in enumerate(sent) if "credit_post" in sql)
    # The original was locked first, in a transaction the call then joined: its own
    # round trip, then COMMIT's (the connection-level commit is the only other wait).
    assert any("FOR UPDATE" in sql for sql, _ in sent[:call])
    assert sent[call + 1 :] == [(ROUND_TRIP, None), (ROUND_TRIP, None)], sent[call:]
    event = posted_event(app, reversal.get_json()["id"])
    assert event["data"]["balances"] == {alice["id"]: 0}
    assert woken == [1]


HOSTILE = [
    'a"b',
    "a\\b",
    "NULL",
    "null",
    "",
    " lead",
    "trail ",
    "x,y}{",
    '{"a"}',
    "é ü 😀",
    '\\"',
    "a\\",
    "t\tn\n",
    "'q'",
]


def test_the_leg_arrays_reach_postgresql_as_sent_whatever_the_strings(app):
    """The legs go to credit_post() as array literals (array_literal): a quote, a backslash,
    a brace, a comma or the word NULL in a value must not end or add an element."""
    with app.container.database().engine.connect() as connection:
        raw = connection.connection.driver_connection
        strings, numbers, flags = raw.execute(
            "SELECT CAST(%s AS VARCHAR[]), CAST(%s AS BIGINT[]), CAST(%s AS BOOLEAN[])",
            (array_literal([*HOSTILE, None]), array_literal([-5, 5, 10**12]), array_literal([True, False])),
        ).fetchone()
    assert strings == [*HOSTILE, None]
    assert (numbers, flags) == ([-5, 5, 10**12], [True, False])


def test_a_transfer_naming_a_near_copy_of_a_users_id_moves_nothing(app, admin):
    """Ids made of a real one plus the characters an array literal treats specially are
    unknown users (404), never the real user or two of them."""
    client = app.test_client()
    alice, alice_h = user_with_token(client, "alice")
    bob, _ = user_with_token(client, "bob")
    deposit(client, admin, alice["id"], 50)
    before = ledger_snapshot(app)
    bob_id = bob["id"]
    # (ids are at most 64 characters, so one copy of the id each)
    for near in (f'{bob_id}"', f'"{bob_id}"', f"{bob_id}\\", f"{{{bob_id}}}", f"{bob_id},", f'{bob_id}","x', "NULL"):
        body = {"from_user_id": alice["id"], "to_user_id": near, "amount": 5}
        response = client.post("/transactions", json=body, headers=alice_h)
        assert response.status_code == 404, (near, response.get_json())
        assert response.get_json()["error"]["code"] == "not_found"
    assert ledger_snapshot(app) == before
