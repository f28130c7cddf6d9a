"""wallet_module: one wallet per user, balances, deposits and withdrawals."""

from __future__ import annotations

from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module.routes import build_blueprint
from app.services.users import USER_CREATED
from app.services.wallets import WalletService


class WalletModule(Module):
    NAME = "wallet_module"
    DEPENDENCIES = ("connection_api", "user_management")
    DESCRIPTION = "Wallets, balances, deposits and withdrawals"
    ROUTE_PREFIXES = ("/wallet",)

    def __init__(
        self, connection_api: ConnectionApiModule, user_management: UserManagementModule, wallets: WalletService
    ) -> None:
        self.connection = connection_api
        self.users = user_management
        self.wallets = wallets

    def initialize(self) -> bool:
        # Wallets follow users through the in-transaction event, so user_management
        # never needs to know this module exists.
        self.connection.events.subscribe(USER_CREATED, self.wallets.create_wallet)
        return True

    def register_routes(self, app) -> None:
        self.connection.register_blueprint(build_blueprint(self.wallets, self.users.guard))

    def shutdown(self) -> None:
        self.connection.events.unsubscribe(USER_CREATED, self.wallets.create_wallet)
