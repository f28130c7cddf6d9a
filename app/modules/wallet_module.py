"""wallet_module: one wallet per user, balances, deposits and withdrawals."""
from __future__ import annotations

from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.user_management import UserManagementModule


class WalletModule(Module):
    NAME = "wallet_module"
    DEPENDENCIES = ("connection_api", "user_management")
    DESCRIPTION = "Wallets, balances, deposits and withdrawals"

    def __init__(self, connection_api: ConnectionApiModule, user_management: UserManagementModule) -> None:
        self.connection = connection_api
        self.users = user_management
