"""HTTP routes for wallets."""

from __future__ import annotations

from datetime import UTC

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.guard import AccessGuard
from app.http.idempotency import idempotency_request, outcome_response
from app.schemas.ledger import BalanceQuerySchema, BalanceSchema, MoneyMovementSchema, TransactionSchema
from app.services.wallets import WalletService


def build_blueprint(wallets: WalletService, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("wallets", __name__, url_prefix="/wallet", description="Wallets and balances")

    @blp.url_value_preprocessor
    def expect_reads(endpoint, values):
        """Runs before authenticate: a balance read rides on the token check's cache round trip."""
        if endpoint == f"{blp.name}.get_balance" and values:
            wallets.expect_balance_read(values["user_id"])

    @blp.before_request
    def authenticate():
        """Every route here needs a caller: a missing token is 401 before any body is validated."""
        guard.principal()

    @blp.route("/balance/<string(maxlength=64):user_id>")
    @blp.arguments(BalanceQuerySchema, location="query")
    @blp.response(200, BalanceSchema)
    @errors("forbidden", "not_found", "validation_error", auth=True)
    def get_balance(query, user_id):
        """A wallet's balance, now or `as_of` a past moment (owner, admin or auditor)."""
        if query["as_of"] is not None:
            as_of = query["as_of"]
            as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
            return wallets.balance_as_of(guard.principal(), user_id, as_of)
        return wallets.balance(guard.principal(), user_id)

    @blp.route("/deposit", methods=["POST"])
    @blp.arguments(MoneyMovementSchema)
    @blp.response(201, TransactionSchema)
    @errors("forbidden", "not_found", auth=True, body=True, idempotent=True)
    def deposit(body):
        """Credit a wallet from the issuance account (admin)."""
        actor = guard.principal()
        return outcome_response(
            wallets.deposit(
                actor,
                body["user_id"],
                body["amount"],
                body["description"],
                idempotency_request(actor.user_id, body),
            )
        )

    @blp.route("/withdraw", methods=["POST"])
    @blp.arguments(MoneyMovementSchema)
    @blp.response(201, TransactionSchema)
    @errors("forbidden", "not_found", "insufficient_funds", auth=True, body=True, idempotent=True)
    def withdraw(body):
        """Debit a wallet into the redemption account (owner or admin)."""
        actor = guard.principal()
        return outcome_response(
            wallets.withdraw(
                actor,
                body["user_id"],
                body["amount"],
                body["description"],
                idempotency_request(actor.user_id, body),
            )
        )

    return blp
