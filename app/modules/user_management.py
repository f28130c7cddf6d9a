"""user_management: accounts, tokens, roles and login throttling."""
from __future__ import annotations

from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule


class UserManagementModule(Module):
    NAME = "user_management"
    DEPENDENCIES = ("connection_api",)
    DESCRIPTION = "Users, bearer tokens, roles and login throttling"

    def __init__(self, connection_api: ConnectionApiModule) -> None:
        self.connection = connection_api
