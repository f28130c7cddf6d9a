"""On PostgreSQL a posting and its idempotency record go out together: two statements (the
first wallet's update, then one carrying the rest) in one pipeline."""

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
    """(text of each statement psycopg executes, id of the pipeline it went out in)."""
    log: list[tuple[str, int | None]] = []
    execute = psycopg.Cursor.execute

    def recording(cursor, query, params=None, **kwargs):
        pipeline = cursor.connection._pipeline
        log.append((" ".join(str(query).split()), id(pipeline) if pipeline is not None else None))
        return execute(cursor, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    return log


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
            assert len(writes) == 2, writes
            assert writes[0][0].startswith("UPDATE accounts SET")
            rest = writes[1][0]
            for part in (
                "UPDATE accounts SET",
                "INSERT INTO transactions",
                "INSERT INTO ledger_entries",
                "INSERT INTO idempotency_keys",
            ):
                assert part in rest
            assert writes[0][1] is not None and writes[1][1] == writes[0][1]

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
