"""HTTP routes for wallets."""
from __future__ import annotations

from flask_smorest import Blueprint

from app.http.guard import AccessGuard
from app.http.idempotency import IDEMPOTENCY_DOC, RENDERER, idempotency_request, outcome_response
from app.schemas.ledger import BalanceSchema, MoneyMovementSchema, TransactionSchema
from app.services.wallets import WalletService

BEARER = [{"bearerAuth": []}]


def build_blueprint(wallets: WalletService, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("wallets", __name__, url_prefix="/wallet", description="Wallets and balances")

    @blp.route("/balance/<string:user_id>")
    @blp.response(200, BalanceSchema)
    @blp.doc(security=BEARER)
    def balance(user_id):
        """A wallet's balance (owner or admin)."""
        return wallets.balance(guard.principal(), user_id)

    @blp.route("/deposit", methods=["POST"])
    @blp.arguments(MoneyMovementSchema)
    @blp.response(201, TransactionSchema)
    @blp.alt_response(409, description="idempotency_conflict")
    @blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
    def deposit(body):
        """Credit a wallet from the issuance account (admin)."""
        actor = guard.principal()
        return outcome_response(wallets.deposit(actor, body["user_id"], body["amount"], body["description"],
                                                RENDERER, idempotency_request(actor.user_id, body)))

    @blp.route("/withdraw", methods=["POST"])
    @blp.arguments(MoneyMovementSchema)
    @blp.response(201, TransactionSchema)
    @blp.alt_response(409, description="insufficient_funds or idempotency_conflict")
    @blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
    def withdraw(body):
        """Debit a wallet into the redemption account (owner or admin)."""
        actor = guard.principal()
        return outcome_response(wallets.withdraw(actor, body["user_id"], body["amount"], body["description"],
                                                 RENDERER, idempotency_request(actor.user_id, body)))

    return blp
