"""transactions_module: transfers, history and reversals."""

from __future__ import annotations

from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.transactions_module.routes import build_blueprint
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule
from app.services.transactions import TransactionService


class TransactionsModule(Module):
    NAME = "transactions_module"
    DEPENDENCIES = ("connection_api", "user_management", "wallet_module")
    DESCRIPTION = "Transfers, history and reversals"
    ROUTE_PREFIXES = ("/transactions",)

    def __init__(
        self,
        connection_api: ConnectionApiModule,
        user_management: UserManagementModule,
        wallet_module: WalletModule,
        transactions: TransactionService,
    ) -> None:
        self.connection = connection_api
        self.users = user_management
        # Transfers post into wallets: this module is only meaningful once they exist.
        self.wallet_module = wallet_module
        self.transactions = transactions

    def register_routes(self, app) -> None:
        self.connection.register_blueprint(build_blueprint(self.transactions, self.users.guard))
