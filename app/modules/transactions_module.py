"""transactions_module: transfers, history and reversals."""
from __future__ import annotations

from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule


class TransactionsModule(Module):
    NAME = "transactions_module"
    DEPENDENCIES = ("connection_api", "user_management", "wallet_module")
    DESCRIPTION = "Transfers, history and reversals"

    def __init__(self, connection_api: ConnectionApiModule, user_management: UserManagementModule,
                 wallet_module: WalletModule) -> None:
        self.connection = connection_api
        self.users = user_management
        self.wallets = wallet_module
