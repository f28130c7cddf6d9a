"""audit_module: every event as an entry of a tamper-evident hash chain, served to admins and
auditors (list, read, verify, export), with signed checkpoints and an audited purge (CLI)."""

from __future__ import annotations

from app.kernel import Module
from app.modules.audit_module.routes import build_blueprint
from app.modules.connection_api import ConnectionApiModule
from app.modules.user_management import UserManagementModule
from app.services.audit import trail
from app.services.audit.trail import AuditTrail


class AuditModule(Module):
    NAME = "audit_module"
    DEPENDENCIES = ("connection_api", "user_management")
    CRITICAL = False
    DESCRIPTION = "Audit trail: every event in a hash chain; verify, export, signed checkpoints"
    ROUTE_PREFIXES = ("/audit",)
    EVENT_TYPES = ("*",)
    EMITS = trail.EMITS

    def __init__(
        self, connection_api: ConnectionApiModule, user_management: UserManagementModule, audit_trail: AuditTrail
    ) -> None:
        self.connection = connection_api
        self.users = user_management
        self.trail = audit_trail

    def handle_events(self, uow, events) -> None:
        self.trail.append_events(uow.session, events)

    def register_routes(self, app) -> None:
        self.connection.register_blueprint(build_blueprint(self.trail, self.users.guard))
