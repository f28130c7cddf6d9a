"""What a database's schema revision means for this code, in the words the log, /readyz and the
503 use."""

from __future__ import annotations

from app.infrastructure.migrations import SchemaState, head_revision, known_revisions

HEAD = head_revision()


def test_at_the_head_there_is_nothing_to_say():
    state = SchemaState(HEAD, HEAD)
    assert state.current and state.problem is None and state.advice is None


def test_never_migrated():
    state = SchemaState(None, HEAD)
    assert not state.current
    assert state.problem == "database schema not migrated"
    assert state.advice == "database schema not migrated: run `credit-system db upgrade`"


def test_behind_the_code():
    older = sorted(known_revisions())[0]
    state = SchemaState(older, "a-later-revision")
    assert state.problem == f"database schema out of date (at revision {older}, this code needs a-later-revision)"
    assert state.advice.endswith(": run `credit-system db upgrade`")


def test_ahead_of_the_code_is_not_fixed_by_an_upgrade():
    state = SchemaState("fffffffffff0", HEAD)
    assert state.problem == "database schema at revision fffffffffff0, which this code does not know (a newer release?)"
    assert "db upgrade" not in state.advice
