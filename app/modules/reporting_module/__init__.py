"""reporting_module: summaries over time, balances as of any moment, statements, a dashboard."""

from __future__ import annotations

from typing import Any

from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.reporting_module.routes import build_blueprint, build_dashboard_blueprint
from app.modules.transactions_module import TransactionsModule
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule
from app.services.reports.aggregates import ReportAggregator
from app.services.reports.reads import ReportService
from app.vocabulary import EventType


class ReportingModule(Module):
    NAME = "reporting_module"
    DEPENDENCIES = ("connection_api", "user_management", "wallet_module", "transactions_module")
    CRITICAL = False
    DESCRIPTION = "Summaries, balances as of any moment, statements and the dashboard"
    ROUTE_PREFIXES = ("/reports", "/wallet/statement", "/dashboard")
    EVENT_TYPES = (EventType.TRANSACTION_POSTED.value, EventType.USER_CREATED.value)

    def __init__(
        self,
        connection_api: ConnectionApiModule,
        user_management: UserManagementModule,
        wallet_module: WalletModule,
        transactions_module: TransactionsModule,
        reports: ReportService,
        aggregator: ReportAggregator,
    ) -> None:
        self.connection = connection_api
        self.users = user_management
        # Reports read the wallets and transactions these modules write.
        self.wallet_module, self.transactions_module = wallet_module, transactions_module
        self.reports, self.aggregator = reports, aggregator

    def handle_events(self, uow: Any, events: list[Any]) -> None:
        self.aggregator.handle(uow.session, events)

    def register_routes(self, app) -> None:
        guard = self.users.guard
        self.connection.register_blueprint(build_blueprint(self.reports, guard, app.module_manager))
        app.register_blueprint(build_dashboard_blueprint())
