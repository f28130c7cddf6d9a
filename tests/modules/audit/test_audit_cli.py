"""`credit-system audit verify [--file]`, `audit checkpoint`, `audit purge --before`."""

from __future__ import annotations

import json

from sqlalchemy import select, text

from app.infrastructure.tables import OutboxEvent
from tests.modules.audit.helpers import entries, set_data, untriggered


def test_verify_checkpoint_and_a_tampered_chain(credit_app, credit_cli, people):
    people.fund(people.alice, 10)
    rows = entries(credit_app)
    result = credit_cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert f"verified {len(rows)} entries; head {rows[-1].sequence} {rows[-1].hash}" in result.output

    result = credit_cli("audit", "checkpoint")
    assert result.exit_code == 0, result.output
    checkpoint = json.loads(result.output.strip().splitlines()[-1])
    assert (checkpoint["sequence"], checkpoint["hash"]) == (rows[-1].sequence, rows[-1].hash)
    assert checkpoint["algorithm"] == "HMAC-SHA256" and len(checkpoint["signature"]) == 64
    with credit_app.container.database().engine.connect() as conn:
        (recorded,) = conn.execute(select(OutboxEvent.data).where(OutboxEvent.type == "audit.checkpoint")).scalars()
    assert json.loads(recorded) == checkpoint  # the event carries it off the machine

    assert credit_cli("audit", "verify", "--checkpoint", json.dumps(checkpoint)).exit_code == 0
    forged = {**checkpoint, "sequence": checkpoint["sequence"] + 1}
    result = credit_cli("audit", "verify", "--checkpoint", json.dumps(forged))
    assert result.exit_code == 1 and "signature does not match" in result.output
    assert credit_cli("audit", "verify", "--checkpoint", "not json").exit_code == 1

    with untriggered(credit_app) as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE sequence >= :s"), {"s": rows[-2].sequence})
    assert credit_cli("audit", "verify").exit_code == 0  # the tail's loss shows only against a checkpoint
    result = credit_cli("audit", "verify", "--checkpoint", json.dumps(checkpoint))
    assert result.exit_code == 1
    assert f"first broken entry {checkpoint['sequence']} (missing)" in result.output

    with untriggered(credit_app) as conn:
        set_data(conn, 2, {"forged": 1})
    result = credit_cli("audit", "verify")
    assert result.exit_code == 1 and "first broken entry 2 (altered)" in result.output
    result = credit_cli("audit", "verify", "--from-sequence", "3")
    assert result.exit_code == 2 and "go together" in result.output


def test_verify_file(credit_app, credit_client, credit_cli, people, tmp_path):
    people.fund(people.alice, 10)
    body = credit_client.get("/audit/export", headers=people.admin.headers).get_data(as_text=True)
    good, edited = tmp_path / "audit.jsonl", tmp_path / "edited.jsonl"
    good.write_text(body, encoding="utf-8")
    result = credit_cli("audit", "verify", "--file", str(good))
    assert result.exit_code == 0 and "verified" in result.output
    position = body.index('"amount":10') + len('"amount":1')
    edited.write_bytes(body[:position].encode() + b"1" + body[position + 1 :].encode())  # one byte: 10 -> 11
    result = credit_cli("audit", "verify", "--file", str(edited))
    assert result.exit_code == 1 and "(altered)" in result.output
    edited.write_bytes(body.encode()[:-5] + b'x"}}\n')
    assert credit_cli("audit", "verify", "--file", str(edited)).exit_code == 1
    edited.write_bytes(b"\xff\xfe not text")
    result = credit_cli("audit", "verify", "--file", str(edited))
    assert result.exit_code == 1 and "not verified" in result.output


def test_purge_before_a_date(credit_app, credit_cli, people):
    rows = entries(credit_app)
    result = credit_cli("audit", "purge", "--before", rows[4].occurred_at.isoformat())
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output.strip().splitlines()[-1])
    assert outcome["through_sequence"] <= 4 and outcome["purged"] == outcome["through_sequence"]
    assert credit_cli("audit", "verify").exit_code == 0
    result = credit_cli("audit", "purge", "--before", "last tuesday")
    assert result.exit_code == 2 and "--before" in result.output
