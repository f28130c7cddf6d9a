"""The names every layer shares: transaction types and roles.

Standard library only, and the bottom of the layer order (see setup.cfg's import-linter
contracts), so the schema's CHECK constraints (app.infrastructure.tables), the rules
(app.services) and the API's schemas and OpenAPI enums (app.schemas) all read the one list.
Adding a member here is the whole code change; the database still needs a migration that
widens its CHECK (tests/api/test_vocabulary.py fails until it has one).
"""

from __future__ import annotations

from enum import StrEnum


class TransactionType(StrEnum):
    """What a ledger transaction is; stored in transactions.type and ledger_entries.tx_type."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    REVERSAL = "reversal"


class Role(StrEnum):
    """A user's role; stored in users.role."""

    USER = "user"
    ADMIN = "admin"


def sql_in(column: str, vocabulary: type[StrEnum]) -> str:
    """`column IN ('a', 'b')`: a CHECK constraint's text for the vocabulary's values, in order."""
    values = ", ".join("'" + member.value.replace("'", "''") + "'" for member in vocabulary)
    return f"{column} IN ({values})"
