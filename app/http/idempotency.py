"""Idempotent money routes at the HTTP edge: the key header, rendering, replay headers."""

from __future__ import annotations

from flask import current_app, jsonify, request

from app.http.errors import STATUS_BY_CODE
from app.schemas.ledger import TransactionSchema
from app.services.errors import DomainError, ValidationFailed
from app.services.idempotency import IdempotencyRequest, Outcome, OutcomeKind
from app.services.ledger import TransactionView

HEADER = "Idempotency-Key"
IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Replays the stored response for 24 hours when sent again with the same body.",
        }
    ]
}

_transaction_schema = TransactionSchema()

STATUS_BY_KIND = {OutcomeKind.CREATED: 201, OutcomeKind.REFUSED: 409}


class TransactionRenderer:
    """How a money movement's outcome looks on the wire (stored verbatim for replays);
    given to the ledger once, in containers.py."""

    def success(self, view: TransactionView) -> dict:
        return _transaction_schema.dump(view)

    def failure(self, error: DomainError) -> dict:
        assert STATUS_BY_CODE[error.code] == 409
        return {"error": {"code": error.code, "message": error.message, "details": error.details}}


def idempotency_request(user_id: str, body: dict) -> IdempotencyRequest | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise ValidationFailed.field(HEADER, "must be 1 to 255 characters")
    return IdempotencyRequest.of(user_id, key, request.method, request.path, body)


# Where every money movement can be read (transactions_module); the Location of their 201s.
TRANSACTION_ENDPOINT = "transactions.get_transaction"
TRANSACTION_URL = "/transactions/{}"


def outcome_response(outcome: Outcome):
    response = jsonify(outcome.body)
    response.status_code = STATUS_BY_KIND[outcome.kind]
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if response.status_code == 201 and TRANSACTION_ENDPOINT in current_app.view_functions:
        # Formatted, not url_for: this is the hot path, and tests hold the two equal.
        response.headers["Location"] = TRANSACTION_URL.format(outcome.body["id"])
    return response
