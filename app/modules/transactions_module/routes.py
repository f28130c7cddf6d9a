"""HTTP routes for transfers, history and reversals."""

from __future__ import annotations

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.guard import AccessGuard
from app.http.idempotency import idempotency_request, outcome_response
from app.schemas.common import page_schema
from app.schemas.ledger import HistoryQuerySchema, ReverseSchema, TransactionSchema, TransferSchema
from app.services.transactions import TransactionService

TransactionPageSchema = page_schema(TransactionSchema, "TransactionPage")


def build_blueprint(transactions: TransactionService, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("transactions", __name__, url_prefix="/transactions", description="Transfers and history")

    @blp.before_request
    def authenticate():
        """Every route here needs a caller: a missing token is 401 before any body is validated."""
        guard.principal()

    @blp.route("", methods=["POST"])
    @blp.arguments(TransferSchema)
    @blp.response(201, TransactionSchema)
    @errors("forbidden", "not_found", "insufficient_funds", auth=True, body=True, idempotent=True)
    def transfer(body):
        """Move credits between two users' wallets (owner of from_user_id, or admin)."""
        actor = guard.principal()
        return outcome_response(
            transactions.transfer(
                actor,
                body["from_user_id"],
                body["to_user_id"],
                body["amount"],
                body["description"],
                idempotency_request(actor.user_id, body),
            )
        )

    @blp.route("", methods=["GET"])
    @blp.arguments(HistoryQuerySchema, location="query")
    @blp.response(200, TransactionPageSchema)
    @errors("forbidden", "not_found", "validation_error", auth=True)
    def list_transactions(query):
        """Transactions touching a user (default: the caller), newest first."""
        page = transactions.history(guard.principal(), query["user_id"], query["type"], query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.route("/<string(maxlength=64):transaction_id>")
    @blp.response(200, TransactionSchema)
    @errors("not_found", auth=True)
    def get_transaction(transaction_id):
        """One transaction (either party, an admin or an auditor)."""
        return transactions.get(guard.principal(), transaction_id)

    @blp.route("/<string(maxlength=64):transaction_id>/reverse", methods=["POST"])
    @blp.arguments(ReverseSchema, required=False)
    @blp.response(201, TransactionSchema)
    @errors("forbidden", "not_found", "already_reversed", "insufficient_funds", auth=True, body=True, idempotent=True)
    def reverse_transaction(body, transaction_id):
        """Post the mirror image of a transaction (admin, once)."""
        actor = guard.principal()
        return outcome_response(
            transactions.reverse(actor, transaction_id, body["reason"], idempotency_request(actor.user_id, body))
        )

    return blp
