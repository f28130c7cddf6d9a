"""user_management: accounts, bearer tokens, roles and login throttling."""

from __future__ import annotations

from app.http.guard import AccessGuard
from app.http.principal import register_principal_loader
from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.user_management.routes import build_blueprint
from app.services.auth import AuthService
from app.services.login_throttle import LoginThrottle
from app.services.users import UserService


class UserManagementModule(Module):
    NAME = "user_management"
    DEPENDENCIES = ("connection_api",)
    DESCRIPTION = "Users, bearer tokens, roles and login throttling"
    ROUTE_PREFIXES = ("/users", "/auth")

    def __init__(
        self,
        connection_api: ConnectionApiModule,
        users: UserService,
        auth: AuthService,
        guard: AccessGuard,
        throttle: LoginThrottle,
    ) -> None:
        self.connection = connection_api
        self.users = users
        self.auth = auth
        self.guard = guard
        self.throttle = throttle

    def register_routes(self, app) -> None:
        self.connection.register_blueprint(build_blueprint(self.users, self.auth, self.guard))
        register_principal_loader(app, self.guard.optional)

    def health_check(self) -> dict:
        if not self.throttle.ping():
            return {"status": "degraded", "login_throttle": "unavailable"}
        return {"status": "healthy", "login_throttle": "ok"}
