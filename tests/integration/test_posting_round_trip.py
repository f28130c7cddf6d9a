"""On PostgreSQL a transfer costs two round trips, its event included: the posting and its
idempotency record as two statements (the first wallet's update, then one carrying the
rest) in one pipeline, then the transaction.posted event's insert and COMMIT in a second."""

from __future__ import annotations

import psycopg
import pytest

from app import create_app
from app.config import load_settings
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


def test_a_transfer_is_one_pipeline_and_a_refusal_falls_back(tmp_path, sent):
    with backends.throwaway_postgres() as database_url:
        settings = load_settings(
            environ={},
            database_url=database_url,
            cache_url="memory://",
            secret_key="test-secret-key-0123456789abcdef",
            instance_path=str(tmp_path),
        )
        app = create_app(settings)
        try:
            client = app.test_client()
            make_admin(app)
            admin = bearer(login(client, "admin"))
            alice, alice_h = user_with_token(client, "alice")
            bob, _ = user_with_token(client, "bob")
            deposit(client, admin, alice["id"], 50)

            body = {"from_user_id": alice["id"], "to_user_id": bob["id"], "amount": 20}
            sent.clear()
            assert (
                client.post("/transactions", json=body, headers={**alice_h, "Idempotency-Key": "a"}).status_code == 201
            )
            writes = [(sql, pipeline) for sql, pipeline in sent if sql.split()[0] in ("UPDATE", "INSERT", "WITH")]
            assert len(writes) == 3, writes
            assert writes[0][0].startswith("UPDATE accounts SET")
            rest = writes[1][0]
            for part in (
                "UPDATE accounts SET",
                "INSERT INTO transactions",
                "INSERT INTO ledger_entries",
                "INSERT INTO idempotency_keys",
            ):
                assert part in rest
            assert "balance_after" in rest  # the entries' balances ride in the same statement
            assert writes[0][1] is not None and writes[1][1] == writes[0][1]
            # The event goes out with COMMIT, in a second pipeline: the posting's balances are
            # only known once the first one's results are back.
            assert writes[2][0].startswith("INSERT INTO outbox_events") and "transaction.posted" not in writes[2][0]
            commit = [pipeline for sql, pipeline in sent if sql == "COMMIT"]
            assert commit == [writes[2][1]] and writes[2][1] is not None
            # No wait outside the two pipelines (the COMMIT that used to follow the posting on
            # its own now rides with the event), and one in the event's. The posting's first
            # pipeline waits twice, as before this test counted waits: psycopg syncs after the
            # BEGIN it sends in pipeline mode, then at the pipeline's end.
            waits = [pipeline for sql, pipeline in sent if sql == ROUND_TRIP]
            assert waits == [writes[0][1], writes[0][1], writes[2][1]], sent

            before = ledger_snapshot(app)
            sent.clear()
            refused = client.post(
                "/transactions", json={**body, "amount": 31}, headers={**alice_h, "Idempotency-Key": "b"}
            )
            assert refused.status_code == 409
            # Sent in one go, rolled back, then redone one statement at a time.
            assert any(pipeline is not None for _, pipeline in sent)
            assert any(sql.startswith("UPDATE") and pipeline is None for sql, pipeline in sent)
            assert ledger_snapshot(app) == {**before, "idempotency_keys": before["idempotency_keys"] + 1}
        finally:
            app.module_manager.shutdown()
