"""The audit trail through the API: every event one chained entry, filters and cursor, reads and
exports audited, the export verifying offline, bad input refused."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.events.envelope import Event
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.tables import OutboxEvent, User
from app.infrastructure.tables_audit import AuditEntry
from app.services.audit import export
from app.services.audit.chain import GENESIS, entry_hash
from app.testing import assert_error, deliver_events
from tests.modules.audit.helpers import entries

README = Path(__file__).resolve().parents[3] / "README.md"


def _get(client, path, person, **params):
    return client.get(path, query_string=params, headers=person.headers)


def _all(client, person, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        page = _get(client, "/audit/entries", person, limit=3, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.json
        items += page.json["items"]
        cursor = page.json["next_cursor"]
        if not cursor:
            return items


def test_every_event_becomes_one_chained_entry_with_who_what_and_where(credit_app, credit_client, people):
    payment = people.fund(people.alice, 70)
    transfer = credit_client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 20},
        headers={**people.alice.headers, "X-Request-ID": "req-audit-1"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    ).json
    deliver_events(credit_app)
    with credit_app.container.database().engine.connect() as conn:
        events = conn.execute(select(OutboxEvent.event_id, OutboxEvent.type).order_by(OutboxEvent.sequence)).all()
    rows = entries(credit_app)
    # Every event before the first read of the trail, in sequence order, chained from 64 zeros.
    assert [(r.event_id, r.action) for r in rows] == [(e.event_id, e.type) for e in events]
    assert [r.sequence for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == GENESIS and all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))

    items = _get(credit_client, "/audit/entries", people.admin, action="transaction.posted").json["items"]
    assert [i["data"]["transaction"]["id"] for i in items] == [transfer["id"], payment["id"]]  # newest first
    posted = items[0]
    assert posted["actor"] == {"type": "user", "id": people.alice.id}
    assert posted["target"] == {"type": "transaction", "id": transfer["id"]}
    assert (posted["request_id"], posted["remote_addr"]) == ("req-audit-1", "198.51.100.7")
    assert posted["hash"] == entry_hash(posted["prev_hash"], posted)
    assert _get(credit_client, f"/audit/entries/{posted['sequence']}", people.admin).json == posted


def test_passwords_hashes_and_tokens_never_appear(credit_app, credit_client, people):
    credit_client.patch(
        f"/users/{people.alice.id}",
        json={"password": "brand-new-passw0rd", "current_password": people.alice.password},
        headers=people.alice.headers,
    )
    credit_client.post("/auth/login", json={"username": "bob", "password": "wrong-password-1"})
    with credit_app.container.database().unit_of_work() as uow:  # a module's event carrying one by mistake
        uow.record(DomainEvent("audit.read", None, {"view": "x", "nested": {"api_key": "k-123", "access_token": "t"}}))
        uow.commit()
    with credit_app.container.database().engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(select(User.password_hash))]
    text = json.dumps([tuple(r) for r in entries(credit_app)], default=str)
    for secret in [*hashes, "brand-new-passw0rd", "wrong-password-1", people.alice.token, people.bob.token, "k-123"]:
        assert secret not in text
    assert '"api_key":"[masked]"' in text.replace("\\", "") or "[masked]" in text
    changed = [json.loads(r.data) for r in entries(credit_app) if r.action == "user.updated"]
    assert changed[-1]["changed"] == ["password"]


def test_a_redelivered_event_adds_no_second_entry(credit_app, people):
    module = credit_app.module_manager.get_module("audit_module")
    rows = entries(credit_app)
    with credit_app.container.database().engine.connect() as conn:
        outbox = conn.execute(select(OutboxEvent).where(OutboxEvent.event_id == rows[-1].event_id)).one()
    for _ in range(2):  # again in a batch of its own, and twice within one batch
        with credit_app.container.database().unit_of_work() as uow:
            module.handle_events(uow, [Event.from_row(outbox), Event.from_row(outbox)])
            uow.commit()
    assert len(entries(credit_app)) == len(rows)


def test_filters_and_cursor(credit_app, credit_client, people):
    for amount in (1, 2, 3, 4):
        people.fund(people.bob, amount)
    deliver_events(credit_app)
    everything = _all(credit_client, people.admin)
    assert [i["sequence"] for i in everything] == sorted((i["sequence"] for i in everything), reverse=True)
    by_bob = _all(credit_client, people.admin, target_id=people.bob.id)
    assert by_bob and all(i["target"]["id"] == people.bob.id for i in by_bob)
    by_admin = _all(credit_client, people.admin, actor_id=people.admin.id, action="transaction.")
    assert [i["data"]["transaction"]["amount"] for i in by_admin] == [4, 3, 2, 1]
    login = _all(credit_client, people.admin, action="auth.login_succeeded")  # "_" is no wildcard
    assert login and {i["action"] for i in login} == {"auth.login_succeeded"}
    middle = by_admin[1]["occurred_at"]
    since = _all(credit_client, people.admin, action="transaction.posted", since=middle)
    assert [i["data"]["transaction"]["amount"] for i in since][-1] == 3
    until = _all(credit_client, people.admin, action="transaction.posted", until=middle)
    assert [i["data"]["transaction"]["amount"] for i in until] == [2, 1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "9999-12-31T23:59:59-05:00"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"action": "no.such."}, "action"),
        ({"action": "transfer"}, "action"),
        ({"limit": 201}, "limit"),
        ({"limit": 10**30}, "limit"),
        ({"limit": 0}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),
        ({"actor_id": "x" * 37}, "actor_id"),
        ({"target_id": "a\x00b"}, "target_id"),
    ],
)
def test_bad_filters_are_422_with_the_error_body(credit_app, credit_client, people, params, field):
    before = len(entries(credit_app))
    response = _get(credit_client, "/audit/entries", people.admin, **params)
    assert_error(response, 422, "validation_error")
    assert field in response.json["error"]["details"]
    assert len(entries(credit_app)) == before  # a refused read is not even audited


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/audit/verify", {"from_sequence": 1}, "from_hash"),
        ("/audit/verify", {"from_hash": "0" * 64}, "from_sequence"),
        ("/audit/verify", {"from_sequence": 1, "from_hash": "xyz"}, "from_hash"),
        ("/audit/verify", {"from_sequence": 0, "from_hash": "0" * 64}, "from_sequence"),
        ("/audit/export", {"format": "xml"}, "format"),
        ("/audit/export", {"since": "not-a-date"}, "since"),
        ("/audit/export", {"since": "2026-01-02", "until": "2026-01-01"}, "until"),
    ],
)
def test_bad_verify_and_export_parameters_are_422(credit_client, people, path, params, field):
    response = _get(credit_client, path, people.admin, **params)
    assert_error(response, 422, "validation_error")
    assert field in response.json["error"]["details"]


def test_only_admins_and_auditors_read_the_trail(credit_client, people):
    eve = people.add("eve")
    credit_client.patch(f"/users/{eve.id}", json={"role": "auditor"}, headers=people.admin.headers)
    from app.testing import bearer, login

    auditor = bearer(login(credit_client, "eve"))
    for path in ("/audit/entries", "/audit/entries/1", "/audit/verify", "/audit/export"):
        assert_error(credit_client.get(path, headers=people.alice.headers), 403, "forbidden")
        assert_error(credit_client.get(path), 401, "unauthorized")
        assert credit_client.get(path, headers=auditor).status_code == 200, path
    for sequence in ("999999", "99999999999999999999", "-1", "1e3", "%C2%B3", "%D9%A3"):  # "³", Arabic-Indic 3
        assert_error(credit_client.get(f"/audit/entries/{sequence}", headers=auditor), 404, "not_found")
    for method in ("post", "put", "patch", "delete"):
        assert getattr(credit_client, method)("/audit/entries/1", headers=auditor).status_code == 405


def test_reading_verifying_and_exporting_are_audited(credit_app, credit_client, people):
    _get(credit_client, "/audit/entries", people.admin, action="user.")
    _get(credit_client, "/audit/verify", people.admin)
    body = _get(credit_client, "/audit/export", people.admin, format="csv").get_data(as_text=True)
    assert body.startswith("sequence,event_id,")
    rows = entries(credit_app)
    reads = [(r.actor_id, json.loads(r.data)) for r in rows if r.action == "audit.read"]
    assert [(actor, data["view"]) for actor, data in reads] == [
        (people.admin.id, "entries"),
        (people.admin.id, "verify"),
    ]
    assert reads[0][1]["filters"] == {"action": "user."}
    (exported,) = [json.loads(r.data) for r in rows if r.action == "audit.exported"]
    assert exported["format"] == "csv" and exported["from_sequence"] == 1


def test_verify_route_reports_the_head(credit_app, credit_client, people):
    rows = entries(credit_app)
    verdict = _get(credit_client, "/audit/verify", people.admin).json
    assert verdict["verified"] and verdict["first_broken"] is None
    assert verdict["entries_checked"] >= len(rows)
    head = rows[-1]
    from_checkpoint = _get(
        credit_client, "/audit/verify", people.admin, from_sequence=head.sequence, from_hash=head.hash
    )
    assert from_checkpoint.json["verified"] and from_checkpoint.json["entries_checked"] >= 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_verifies_offline_and_one_edited_byte_fails(credit_app, credit_client, people, fmt):
    people.fund(people.alice, 5)
    deliver_events(credit_app)
    response = _get(credit_client, "/audit/export", people.admin, format=fmt)
    assert response.status_code == 200 and response.mimetype == export.FORMATS[fmt]
    body = response.get_data(as_text=True)
    last = body.splitlines()[-1]
    verdict = export.verify_text(body)
    assert verdict["verified"] and verdict["entries_checked"] == body.count("\n") - (2 if fmt == "csv" else 1)
    assert str(verdict["head"]["sequence"]) in last and verdict["head"]["hash"] in last
    step = 1 if fmt == "jsonl" else 7  # every byte of the JSONL file; every 7th of the CSV
    for position in range(0, len(body), step):
        edited = body[:position] + ("x" if body[position] != "x" else "y") + body[position + 1 :]
        try:
            assert not export.verify_text(edited)["verified"], position
        except export.UnreadableExport:
            pass


def test_a_shortened_export_fails(credit_app, credit_client, people):
    body = _get(credit_client, "/audit/export", people.admin).get_data(as_text=True)
    lines = body.split("\n")
    cut = "\n".join(lines[:-3] + lines[-2:])  # the last entry dropped, the head line kept
    assert export.verify_text(cut)["first_broken"]["reason"] == "missing"


def test_an_export_range_is_contiguous_and_verifies(credit_app, credit_client, people):
    for amount in (1, 2, 3):
        people.fund(people.bob, amount)
    rows = entries(credit_app)
    since = rows[3].occurred_at.isoformat()
    body = _get(credit_client, "/audit/export", people.admin, since=since).get_data(as_text=True)
    first = json.loads(body.split("\n")[0])
    assert first["sequence"] <= rows[3].sequence and export.verify_text(body)["verified"]


def _readme_verifier() -> str:
    text = README.read_text()
    match = re.search(r"<!-- readme-example: audit-verify[^\n]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "the README's ten-line verifier (readme-example: audit-verify) is gone"
    return match.group(1)


def test_the_readmes_ten_line_verifier_checks_a_real_export(
    credit_app, credit_client, people, tmp_path, capsys, monkeypatch
):
    code = _readme_verifier()
    assert len([line for line in code.splitlines() if line.strip()]) <= 11  # ten lines and the import
    people.fund(people.alice, 9)
    deliver_events(credit_app)
    body = _get(credit_client, "/audit/export", people.admin).get_data(as_text=True)
    good, bad = tmp_path / "audit.jsonl", tmp_path / "edited.jsonl"
    good.write_text(body, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["verify.py", str(good)])
    exec(compile(code, "README", "exec"), {"__name__": "__main__"})
    head = json.loads(body.split("\n")[-2])["head"]
    assert capsys.readouterr().out.split() == ["verified", str(head["sequence"]), head["hash"]]
    bad.write_text(body.replace('"amount":9', '"amount":90'), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["verify.py", str(bad)])
    with pytest.raises(AssertionError):
        exec(compile(code, "README", "exec"), {"__name__": "__main__"})


def test_entries_count_once_per_event(credit_app, people):
    deliver_events(credit_app)
    with credit_app.container.database().engine.connect() as conn:
        events = conn.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sequence.is_not(None)))
        count = conn.scalar(select(func.count()).select_from(AuditEntry))
    assert count == events
