"""Tampering with the audit table behind the app's back is found, on the selected backend:
an altered entry, a deleted middle one, the newest ones deleted, a chain rewritten with
recomputed hashes; the triggers refuse UPDATE and DELETE; a purge leaves a chain that verifies."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.infrastructure.tables_audit import AuditEntry
from app.services.audit.chain import GENESIS, entry_hash
from app.services.audit.trail import _entry
from app.testing import deliver_events
from tests.modules.audit.helpers import entries, set_data, untriggered


@pytest.fixture
def chain(credit_app, people):
    """A dozen entries or more: sign-ups, logins, deposits."""
    for amount in (10, 20, 30, 40, 50):
        people.fund(people.alice, amount)
    people.fund(people.bob, 5)
    rows = entries(credit_app)
    assert len(rows) >= 12
    return rows


def _verify(app, **checkpoint):
    return app.container.audit_trail().verify(None, checkpoint.get("sequence"), checkpoint.get("hash"))


def test_an_untouched_chain_verifies(credit_app, chain):
    verdict = _verify(credit_app)
    assert verdict == {
        "verified": True,
        "entries_checked": len(chain),
        "head": {"sequence": chain[-1].sequence, "hash": chain[-1].hash},
        "first_broken": None,
    }


def test_one_entry_changed_is_altered_at_its_sequence(credit_app, chain):
    victim = chain[7]
    data = json.loads(victim.data)
    data["forged"] = True
    with untriggered(credit_app) as conn:
        set_data(conn, victim.sequence, data)
    verdict = _verify(credit_app)
    assert verdict["first_broken"] == {"sequence": victim.sequence, "reason": "altered"}
    assert not verdict["verified"] and verdict["entries_checked"] == victim.sequence - 1


def test_an_entry_changed_with_its_hash_recomputed_is_relinked_at_the_next(credit_app, chain):
    victim = chain[4]
    entry = _entry(victim)
    entry["actor"] = {"type": "system", "id": None}
    forged = entry_hash(entry["prev_hash"], entry)
    with untriggered(credit_app) as conn:
        conn.execute(
            text("UPDATE audit_entries SET actor_type='system', actor_id=NULL, hash=:h WHERE sequence=:s"),
            {"h": forged, "s": victim.sequence},
        )
    assert _verify(credit_app)["first_broken"] == {"sequence": victim.sequence + 1, "reason": "relinked"}


def test_a_deleted_middle_entry_is_missing(credit_app, chain):
    victim = chain[5]
    with untriggered(credit_app) as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE sequence = :s"), {"s": victim.sequence})
    assert _verify(credit_app)["first_broken"] == {"sequence": victim.sequence, "reason": "missing"}


def test_deleting_the_newest_entries_is_caught_by_a_checkpoint(credit_app, chain):
    checkpoint = credit_app.container.audit_trail().checkpoint()
    assert checkpoint["sequence"] == chain[-1].sequence
    with untriggered(credit_app) as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE sequence > :s"), {"s": chain[-4].sequence})
    assert _verify(credit_app)["verified"]  # the chain alone cannot tell
    verdict = _verify(credit_app, **checkpoint)
    assert verdict["first_broken"] == {"sequence": checkpoint["sequence"], "reason": "missing"}


def test_a_chain_rewritten_with_recomputed_hashes_is_caught_by_a_checkpoint(credit_app, chain):
    checkpoint = {"sequence": chain[-1].sequence, "hash": chain[-1].hash}
    # The tamperer changes entry 3 and rehashes everything from there: a self-consistent chain.
    prev = chain[1].hash
    with untriggered(credit_app) as conn:
        for row in chain[2:]:
            entry = _entry(row)
            if row.sequence == chain[2].sequence:
                entry["remote_addr"] = "203.0.113.66"
            entry["prev_hash"] = prev
            entry["hash"] = prev = entry_hash(prev, entry)
            conn.execute(
                text("UPDATE audit_entries SET remote_addr=:r, prev_hash=:p, hash=:h WHERE sequence=:s"),
                {"r": entry["remote_addr"], "p": entry["prev_hash"], "h": entry["hash"], "s": row.sequence},
            )
    assert _verify(credit_app)["verified"]  # rewritten consistently: only a checkpoint tells
    verdict = _verify(credit_app, **checkpoint)
    assert verdict["first_broken"] == {"sequence": checkpoint["sequence"], "reason": "altered"}


def test_the_database_refuses_update_and_delete_of_entries(credit_app, chain):
    engine = credit_app.container.database().engine
    for statement in (
        "UPDATE audit_entries SET action = 'x' WHERE sequence = 1",
        "DELETE FROM audit_entries WHERE sequence = 1",
        "DELETE FROM audit_entries",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE audit_entries"))
    assert [tuple(r) for r in entries(credit_app)][: len(chain)] == [tuple(r) for r in chain]


def test_a_purge_drops_whole_old_ranges_and_the_chain_still_verifies(credit_app, chain, people):
    trail = credit_app.container.audit_trail()
    cut = chain[6]
    outcome = trail.purge(cut.occurred_at)
    assert outcome["through_sequence"] < cut.sequence and outcome["purged"] == outcome["through_sequence"]
    deliver_events(credit_app)  # the retention.purged event arrives: already in the chain, not added twice
    with credit_app.container.database().engine.connect() as conn:
        left = conn.execute(select(AuditEntry).order_by(AuditEntry.sequence)).all()
        purged = conn.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "retention.purged")
        )
    assert purged == 1
    assert left[0].sequence == outcome["through_sequence"] + 1 and left[0].prev_hash == outcome["through_hash"]
    (anchor,) = [r for r in left if r.action == "retention.purged"]
    assert json.loads(anchor.data)["through_hash"] == outcome["through_hash"]
    people.fund(people.bob, 1)
    deliver_events(credit_app)
    verdict = _verify(credit_app)
    assert verdict["verified"] and verdict["entries_checked"] == len(entries(credit_app))
    # Deleting the oldest remaining entry after a purge is still found.
    with untriggered(credit_app) as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE sequence = :s"), {"s": left[0].sequence})
    assert _verify(credit_app)["first_broken"] == {"sequence": left[0].sequence, "reason": "missing"}


def test_without_a_purge_the_oldest_entries_deleted_are_missing(credit_app, chain):
    with untriggered(credit_app) as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE sequence <= 3"))
    assert _verify(credit_app)["first_broken"] == {"sequence": 1, "reason": "missing"}


def test_a_purge_with_nothing_old_enough_changes_nothing(credit_app, chain):
    trail = credit_app.container.audit_trail()
    assert trail.purge(chain[0].occurred_at)["purged"] == 0
    assert len(entries(credit_app)) == len(chain)
    assert chain[0].prev_hash == GENESIS
